PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test test-fast test-postgres test-browser test-deploy lint bench migrate clean

# `make run` installs the runtime only; tests, lint and benchmarks add requirements-dev.txt.
$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(DEV_STAMP)

## Run the whole stack in the foreground: Redis (if none answers), migrations, env providers,
## the ASGI server on $$PORT and a Celery worker with beat. Ctrl-C stops everything.
run: $(STAMP)
	$(PY) -m gomodel.supervisor

## The whole test suite (needs Redis at $$REDIS_URL, default 127.0.0.1:6379 db 15).
test: $(DEV_STAMP)
	$(PY) -m pytest

## The suite without the slow tests (schemathesis, accounting load and crash recovery, browser).
test-fast: $(DEV_STAMP)
	$(PY) -m pytest -m "not slow"

## Lint: ruff, then mypy (both configured in pyproject.toml; mypy caches in .mypy_cache).
lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

## The same suite against PostgreSQL (the database `test` on 127.0.0.1).
test-postgres: $(DEV_STAMP)
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} $(PY) -m pytest

## Only the admin/dashboard browser tests (Playwright driving Debian's Chromium: apt-get install chromium).
test-browser: $(DEV_STAMP)
	$(PY) -m pytest tests/browser

## The deployment for real (needs a running Docker engine): a debootstrapped base image, the image built on it,
## the compose stack (PostgreSQL, Redis, migrate, 2 web replicas behind nginx, worker, beat) under load with a
## replica and the worker killed. Skipped, loudly, where Docker cannot run. See tests/deploy/test_compose.py.
test-deploy: $(DEV_STAMP)
	GOMODEL_TEST_DEPLOY=1 $(PY) -m pytest tests/deploy -s -v

## Throughput and latency: the mock upstream alone and through the gateway (see bench/README.md).
bench: $(DEV_STAMP)
	$(PY) bench/run.py

migrate: $(STAMP)
	$(PY) manage.py migrate

clean:
	rm -rf $(VENV) var
