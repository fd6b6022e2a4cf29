# Two commands do all the set-up on a fresh Debian machine with Python >= 3.11:
#   make demo   simulated plant + embedded broker + agent + live terminal view
#   make test   lint (ruff), types (mypy), unit and integration tests (real Mosquitto, real sockets)
# Both create the virtualenv in .venv when it is missing; `make test` installs Mosquitto, socat and
# shellcheck (Debian packages) when missing.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)

.PHONY: demo test lint typecheck unit bench schema clean mosquitto test-tools venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "edge-agent needs Python >= 3.11")'
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null \
		|| { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $@

mosquitto:
	@command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] \
		|| { echo "installing mosquitto (Debian package)"; \
		     $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mosquitto; }
	@# The Debian package starts a system broker on 1883; the tests start their own on free ports.

# The tests' other real peers: socat makes the virtual serial line for Modbus RTU, shellcheck lints install.sh.
test-tools: mosquitto
	@missing=""; for tool in socat shellcheck; do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	[ -z "$$missing" ] || { echo "installing$$missing (Debian packages)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; }

demo: $(STAMP)
	$(BIN)/edge-agent demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) test-tools
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test: lint typecheck unit

bench: $(STAMP) mosquitto
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

schema: $(STAMP)
	$(BIN)/edge-agent schema > config/edge-agent.schema.json

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
