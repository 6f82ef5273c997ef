# The three commands a newcomer needs: make install, make run, make test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TEST_DATABASE_URL ?= mysql://root@127.0.0.1:3306/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
# pytest-xdist workers (tests/environment.py gives each its own test database, Redis db
# counting down from TEST_REDIS_URL's, and channel-layer prefix); 0 runs in this process.
TEST_WORKERS ?= 2
HOST ?= 127.0.0.1
PORT ?= 8000
# mypy loads trading_site.settings (django-stubs): outside the embedded default (REDIS_URL set)
# the settings want secrets, so the type check brings placeholders when none are set.
MYPY := SECRET_KEY="$${SECRET_KEY:-mypy-only-not-a-secret}" \
	FERNET_KEYS="$${FERNET_KEYS:-bXlweS1vbmx5LW5ldmVyLWEtcmVhbC1mZXJuZXQta3k=}" $(VENV)/bin/mypy

.PHONY: install run test lint typecheck format migrate web asgi worker beat streams xts-simulator bench

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install -q --upgrade pip >/dev/null
	@if ! pkg-config --exists libmariadb 2>/dev/null && ! pkg-config --exists mysqlclient 2>/dev/null; then \
		echo "installing libmariadb-dev pkg-config (needed to build mysqlclient)"; \
		if [ "$$(id -u)" = 0 ]; then S=; else S=sudo; fi; \
		$$S apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$S apt-get install -y -qq libmariadb-dev pkg-config >/dev/null; \
	fi
	$(PIP) install -q -r requirements.txt
	@touch $@

run: install
	$(PY) manage.py start_embedded --host $(HOST) --port $(PORT)

test: install
	@scripts/ensure-services.sh
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# ruff, mypy (mypy.ini), the import contracts (.importlinter), migrations that match the
# models, and at most 15 function-level imports, each with its reason (.pre-commit-config.yaml
# runs the same checks).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(MYPY)
	$(VENV)/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) scripts/count_function_imports.py --max 15

typecheck:
	$(MYPY)

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# ---- full-stack shape (set DATABASE_URL, REDIS_URL, SECRET_KEY, FERNET_KEYS first) ----
migrate: install
	$(PY) manage.py migrate

# HTTP through gunicorn (WSGI, persistent DB connections are safe here).
web: install
	DB_CONN_MAX_AGE=60 $(VENV)/bin/gunicorn trading_site.wsgi -w $${WEB_WORKERS:-2} -b $(HOST):$(PORT)

# WebSockets (and HTTP too, if you run only one web process) through daphne.
asgi: install
	$(PY) manage.py serve_web --host $(HOST) --port $${ASGI_PORT:-8001}

worker: install
	$(VENV)/bin/celery -A trading_site worker -l info --concurrency $${WORKER_CONCURRENCY:-4}

# Exactly one beat per deployment.
beat: install
	$(VENV)/bin/celery -A trading_site beat -l info --schedule var/celerybeat-schedule

# Broker event streams (XTS interactive streams, paper exchange events): run one or more;
# they share the streams through leases in Redis (BROKER_STREAMS_CAPACITY per process).
streams: install
	$(PY) manage.py run_broker_streams

xts-simulator: install
	$(PY) manage.py run_xts_simulator --port $${XTS_SIM_PORT:-8701}

bench: install
	@scripts/ensure-services.sh
	@for b in bench/fifo.py bench/orders_place.py bench/orders_batch.py bench/orders_list.py bench/monitoring.py bench/ws.py bench/events.py; do \
		echo "== $$b"; $(PY) $$b || exit 1; done
