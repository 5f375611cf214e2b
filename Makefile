# Every target creates .venv and installs what it needs: nothing else to set up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-long test-frameworks lint bench bench-pg bench-summary bench-growth bench-growth-pg clean kube screenshots

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# setuptools warns on every editable install that folders named like the package
	# may shadow it: here they are the package.
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mlledger demo

# The Kubernetes control plane of the executor's tests (tests/support/kube.py), built
# from the Go module proxy into ~/.cache/mlledger/kubernetes: about 10 minutes the first
# time (needs Go 1.26+), nothing once cached.
kube: $(STAMP)
	$(PY) -m tests.support.kube build

# The report tests render pages in Debian's chromium: installed here when missing (and
# skipped, saying why, where it cannot be; in CI a missing browser fails them).
test: $(STAMP)
	bash .ci/chromium || echo "chromium could not be installed: the browser tests will be skipped"
	$(PY) -m pytest

# The long version of the crash test: 200 SIGKILLs of writers per backend (CI runs it).
test-long: $(STAMP)
	$(PY) -m pytest tests/test_crash.py --crash-kills 200

# The callbacks of the training frameworks (tests/frameworks) run in a virtualenv of
# their own: torch, Lightning, transformers and datasets are about 6 GB (torch from
# PyPI brings CUDA's libraries), too heavy for .venv. A framework missing there is a
# failure, never a skip.
FRAMEWORKS := .venv-frameworks

$(FRAMEWORKS)/.installed: pyproject.toml
	test -x $(FRAMEWORKS)/bin/python || $(PYTHON) -m venv $(FRAMEWORKS)
	$(FRAMEWORKS)/bin/python -m pip install -q --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(FRAMEWORKS)/bin/python -m pip install -q -e '.[dev,frameworks]'
	touch $@

test-frameworks: $(FRAMEWORKS)/.installed
	MLLEDGER_FRAMEWORK_TESTS=1 $(FRAMEWORKS)/bin/python -m pytest tests/frameworks

# The screenshots of docs/ui.md: a demo ledger served and photographed in Debian's chromium.
screenshots: $(STAMP)
	$(PY) -m registry.web.screenshots docs/ui

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy registry lineage audit executors
	$(VENV)/bin/lint-imports

# The peer (MLflow 3.17) runs in a virtualenv of its own; its figures feed the ratios.
PEER := .venv-mlflow

$(PEER)/.installed:
	test -x $(PEER)/bin/python || $(PYTHON) -m venv $(PEER)
	$(PEER)/bin/python -m pip install -q "mlflow==3.17.*" scikit-learn
	touch $@

bench: $(STAMP) $(PEER)/.installed kube
	mkdir -p .mlledger
	$(PEER)/bin/python tests/bench/mlflow_peer.py --runs 200 --out .mlledger/bench-mlflow.json --workdir .mlledger/bench-mlflow
	$(PY) -m tests.bench.run --out .mlledger/bench.json --peer .mlledger/bench-mlflow.json
	$(PY) -m tests.bench.http_api --rates 200,300,400,500 --out .mlledger/bench-http.json
	$(PY) -m tests.bench.ingest --out .mlledger/bench-ingest.json
	$(PY) -m tests.bench.marquez --out .mlledger/bench-marquez.json
	$(PY) -m tests.bench.audit --out .mlledger/bench-audit.json
	$(PY) -m tests.bench.checkpoint_wait --out .mlledger/bench-checkpoint-wait.json
	$(PY) -m tests.bench.erasure --out .mlledger/bench-erasure.json
	$(PY) -m tests.bench.export --out .mlledger/bench-export.json
	$(PY) -m tests.bench.report --out .mlledger/bench-report.json
	$(PY) -m tests.bench.security --out .mlledger/bench-security.json
	$(PY) -m tests.bench.executors --out .mlledger/bench-executors.json
	$(PY) -m tests.bench.startup --out .mlledger/bench-startup.json
	$(PY) -m tests.bench.autolog --out .mlledger/bench-autolog.json
	$(PY) -m tests.bench.serving_hook --out .mlledger/bench-serving-hook.json
	$(PY) -m tests.bench.graph --out .mlledger/bench-graph.json
	$(PY) -m tests.bench.explorer --out .mlledger/bench-explorer.json
	$(PY) -m tests.bench.web --out .mlledger/bench-web.json
	$(PY) -m tests.bench.summary --out .mlledger/bench-summary.md

# The same figures as tests/bench/run.py and tests/bench/http_api.py in make bench, on
# PostgreSQL: a throwaway server (Debian's packages, as the tests use) with durability on.
bench-pg: $(STAMP)
	mkdir -p .mlledger
	$(PY) -m tests.bench.run --store postgresql --out .mlledger/bench-pg.json
	$(PY) -m tests.bench.http_api --store postgresql --rates 200,250,300 --out .mlledger/bench-http-pg.json
	$(PY) -m tests.bench.ingest --store postgresql --out .mlledger/bench-ingest-pg.json
	$(PY) -m tests.bench.marquez --store postgresql --out .mlledger/bench-marquez-pg.json
	$(PY) -m tests.bench.web --store postgresql --out .mlledger/bench-web-pg.json
	$(PY) -m tests.bench.summary --out .mlledger/bench-summary.md

# One table of every result under .mlledger (those not run are listed as such).
bench-summary: $(STAMP)
	$(PY) -m tests.bench.summary --out .mlledger/bench-summary.md

# Latency of scored as the ledger grows to 10k, 100k, 1M and 10M predictions, and its
# chart (--sizes picks other sizes).
bench-growth: $(STAMP)
	mkdir -p .mlledger
	$(PY) -m tests.bench.growth --out .mlledger/bench-growth.json --chart .mlledger/bench-growth.svg

# The same on PostgreSQL (a throwaway durable server), and one chart of both stores
# where the SQLite result is there.
bench-growth-pg: $(STAMP)
	mkdir -p .mlledger
	$(PY) -m tests.bench.growth --store postgresql --out .mlledger/bench-growth-pg.json --work .mlledger/bench-growth-pg
	$(PY) -m tests.bench.growth --chart .mlledger/bench-growth.svg --from $(wildcard .mlledger/bench-growth.json) .mlledger/bench-growth-pg.json

clean:
	rm -rf $(VENV) $(FRAMEWORKS) .mlledger .pytest_cache .ruff_cache .mypy_cache
