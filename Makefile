# scaleforge — two commands on a fresh machine: `make demo` and `make test`.
# Everything installs into .venv; the CPU build of torch goes in first so no CUDA build is pulled.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck bench browser services clean help

help:
	@echo "make demo   - install into .venv and run the flagship pipeline on embedded defaults"
	@echo "make test   - install into .venv and run the whole test suite"
	@echo "make lint   - ruff and mypy --strict"
	@echo "make bench  - run every benchmark in --quick mode"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[all,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/scaleforge demo

# Debian's Chromium drives the dashboard's browser test; wrk drives the serve benchmark.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
	  || echo "warning: could not install chromium; browser tests will skip (or fail under SCALEFORGE_REQUIRE_SERVICES=1)"; }

# Start the local Redis/PostgreSQL if they are installed but stopped (no-op when running).
services:
	@-redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null 2>&1 || true
	@-pg_isready -h 127.0.0.1 -q 2>/dev/null || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql 2>/dev/null | head -1) main start >/dev/null 2>&1 || true

test: $(STAMP) browser services
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk) || true
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache demo-output
