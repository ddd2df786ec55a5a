# Everything runs inside .venv, created on first use.
PY := .venv/bin/python

.PHONY: setup test lint

setup: .venv/.installed

# uv installs the environment in seconds where pip takes minutes. uv does not read pip's configuration, so the
# wheel folders and extra indexes a machine configured for pip (`pip config`) are passed on to it.
PIP_FIND_LINKS := $(shell python3 -m pip config get global.find-links 2>/dev/null)
PIP_EXTRA_INDEX := $(shell python3 -m pip config get global.extra-index-url 2>/dev/null)
UV_FLAGS := $(addprefix --find-links ,$(PIP_FIND_LINKS)) $(addprefix --extra-index-url ,$(PIP_EXTRA_INDEX)) \
	--index-strategy unsafe-best-match

.venv/.installed: requirements.txt requirements-dev.txt pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip uv
	.venv/bin/uv pip install -q --python $(PY) $(UV_FLAGS) -r requirements-dev.txt -e .
	touch $@

# The test command (CI runs exactly this). HF_HUB_OFFLINE: nothing waits on the network.
test: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

.PHONY: demo
# One-command demo: env, database, sample collection, map, dashboard (see README, "Dashboard").
demo:
	scripts/demo.sh
