# authserver — `make run` to serve, `make test` to test. Both are idempotent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Debian packages the test suite drives for real (browser flow, TLS proxy, network namespaces).
TEST_APT_PACKAGES := chromium nginx iproute2
PYTEST_ARGS ?=

.PHONY: run init test lint bench system-deps clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

init: $(VENV)/.installed
	$(BIN)/authserver init

run: init
	$(BIN)/authserver bootstrap-admin
	@echo
	@echo "authserver on http://$(HOST):$(PORT)"
	@echo "  discovery: http://$(HOST):$(PORT)/.well-known/openid-configuration"
	@echo "  JWKS:      http://$(HOST):$(PORT)/.well-known/jwks.json"
	@echo "  health:    http://$(HOST):$(PORT)/readyz"
	@echo "  next:      README.md, 'Getting a token'"
	@echo
	AUTHSERVER_ISSUER="$${AUTHSERVER_ISSUER:-http://$(HOST):$(PORT)}" \
	  $(BIN)/authserver serve --host $(HOST) --port $(PORT)

system-deps:
	@missing=""; for p in $(TEST_APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: $(VENV)/.installed-test system-deps
	$(BIN)/ruff check $(wildcard authserver tests migrations examples bench)
	$(BIN)/pytest -n 2 --durations=20 $(PYTEST_ARGS)

# Benchmarks print figures and assert nothing (bench/run.py --help for options).
BENCH_ARGS ?=
bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check $(wildcard authserver tests migrations examples bench)

clean:
	rm -rf $(VENV) .pytest_cache
