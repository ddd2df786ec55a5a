# Everything runs inside .venv, created on first use.
PY := .venv/bin/python

.PHONY: setup test lint

setup: .venv/.installed

.venv/.installed: requirements.txt requirements-dev.txt pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -e .
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

.PHONY: docs docs-ref
# The documentation site (docs/, mkdocs.yml) into site/; --strict: a broken link or a page left out fails.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

# Regenerate the reference pages (docs/cli.md from every --help, docs/sql-schema.md from the migrations'
# COMMENTs) after changing a command, an option or a migration; tests/test_docs.py fails until they match.
docs-ref: setup
	$(PY) scripts/reference_docs.py
