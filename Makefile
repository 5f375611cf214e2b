# Every target creates .venv and installs what it needs: nothing else to set up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mlledger demo

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy registry lineage audit executors

bench: $(STAMP)
	$(PY) -m tests.bench.run --out .mlledger/bench.json

clean:
	rm -rf $(VENV) .mlledger .pytest_cache .ruff_cache .mypy_cache
