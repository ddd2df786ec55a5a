# Everything runs inside .venv, created on first use.
PY := .venv/bin/python

.PHONY: setup test test-fast lint

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

# While developing: everything but the tests marked slow (browsers, servers, Ray, benchmark smoke runs).
test-fast: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow"

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

.PHONY: demo
# One-command demo: env, database, sample collection, map, dashboard (see README, "Dashboard").
demo:
	scripts/demo.sh

.PHONY: docs docs-ref
# The documentation site (docs/, mkdocs.yml) into site/; --strict: a broken link or a page left out fails.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

# Regenerate the reference pages (docs/cli.md from every --help, docs/sql-schema.md from the migrations'
# COMMENTs) after changing a command, an option or a migration; tests/test_docs.py fails until they match.
docs-ref: setup
	$(PY) scripts/reference_docs.py
