# The two commands of the README: `make run` (demo server) and `make test` (whole suite).
# Everything a fresh machine needs is installed from here; nothing is expected to be there by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
SIM_COUNT ?= 4
# On PostgreSQL (the production path) the settings refuse to start without SECRET_KEY: checks and
# tests there get a key of their own run unless one is set.
RUN_SECRET_KEY := $(or $(SECRET_KEY),$(shell $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(40))'))

.PHONY: run test venv browser lint check bench clean screenshots

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Debian's chromium for the browser tests (Playwright drives it; Playwright never downloads one).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-dejavu-core; }

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

check: venv
	SECRET_KEY=$(RUN_SECRET_KEY) $(PY) manage.py check
	SECRET_KEY=$(RUN_SECRET_KEY) $(PY) manage.py makemigrations --check --dry-run

# Migrate, load the demo (site, stations of both versions, cards, admin), serve with daphne on
# HOST:PORT and run a few simulated chargers (python -m tools.simulator) against it until Ctrl-C.
run: venv
	$(PY) manage.py migrate --no-input
	$(PY) manage.py demo_data
	@echo "Dashboard: http://$(HOST):$(PORT)/  (demo login: admin / demo-admin-password)"
	@$(PY) -m tools.simulator --url ws://$(HOST):$(PORT)/ocpp/ --count $(SIM_COUNT) --version mix \
	    --prefix DEMO --password demo-charger-password --tokens DEMO-CARD-1,DEMO-CARD-2,DEMO-CARD-3 \
	    --meter-interval 10 --session-every 45 --session-length 90 --duration 0 & \
	  sim=$$!; trap "kill $$sim 2>/dev/null" EXIT INT TERM; \
	  $(VENV)/bin/daphne -b $(HOST) -p $(PORT) csms.asgi:application

# CSMS_RUN_ID keeps concurrent runs on one PostgreSQL/Redis apart (test database, groups, keys).
test: venv browser lint check
	CSMS_RUN_ID=$${CSMS_RUN_ID:-$$$$} SECRET_KEY=$(RUN_SECRET_KEY) $(VENV)/bin/pytest

# Refresh the README's screenshots (docs/screenshots/) from the browser tests.
screenshots: venv browser
	CSMS_RUN_ID=$${CSMS_RUN_ID:-$$$$} UPDATE_SCREENSHOTS=1 $(VENV)/bin/pytest tests/dashboard/test_browser.py -k screenshots

# Load benchmark (tools/bench.py) against PostgreSQL and Redis on 127.0.0.1 (started as .ci/run does).
# The method and the latest figures: docs/benchmark.md. BENCH_ARGS="--servers 2 --profile" etc.
BENCH_CHARGERS ?= 10000
bench: venv
	@pg_isready -q -h 127.0.0.1 -p 5432 || \
	  pg_ctlcluster --skip-systemctl-redirect "$$(ls /etc/postgresql)" main start
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || \
	  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} \
	  $(PY) -m tools.bench --chargers $(BENCH_CHARGERS) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache
