# Everything runs inside .venv, created on first use.
PY := .venv/bin/python

.PHONY: setup test test-fast lint

setup: .venv/.installed

.venv/.installed: requirements.txt requirements-dev.txt pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -e .
	touch $@

# The test command (CI runs exactly this). HF_HUB_OFFLINE: nothing waits on the network.
test: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest

# While developing: everything but the tests marked slow (browsers, servers, Ray, benchmark smoke runs).
test-fast: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow"

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

.PHONY: demo
# One-command demo: env, database, sample collection, map, dashboard (see README, "Dashboard").
demo:
	scripts/demo.sh
