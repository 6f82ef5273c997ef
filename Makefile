# The three commands a newcomer needs: make install, make run, make test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TEST_DATABASE_URL ?= mysql://root@127.0.0.1:3306/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint format fullstack-web fullstack-ws fullstack-worker fullstack-beat xts-simulator bench

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
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(VENV)/bin/pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
