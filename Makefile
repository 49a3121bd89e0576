# Two commands: `make demo` (deploy examples/hello to a local test server) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
FAB := $(VENV)/bin/fab
DEMO_STATE := .testhost/demo
DEMO_SSH_PORT := 2222
DEMO_URL := http://127.0.0.1:8080/

.PHONY: demo stop test lint unit integration bench wheel system-deps venv clean

# Debian packages the local test server needs (debootstrap builds it; ssh talks to it), and
# the checkers the unit tests run on rendered files (systemd-analyze, visudo).
system-deps:
	@command -v debootstrap >/dev/null && command -v ssh-keygen >/dev/null && command -v curl >/dev/null \
	  && command -v git >/dev/null && command -v systemd-analyze >/dev/null && command -v visudo >/dev/null \
	  && python3 -c 'import ensurepip' 2>/dev/null \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	       debootstrap openssh-client curl git python3-venv systemd sudo >/dev/null; }

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

venv: $(VENV)/.installed

demo: system-deps venv
	@if $(PY) tests/testhost.py status --state-dir $(DEMO_STATE) >/dev/null 2>&1; then \
	  echo "test server already running (ssh 127.0.0.1:$(DEMO_SSH_PORT)): redeploying"; \
	else \
	  echo "booting the local test server (first run builds it: about 2 minutes)"; \
	  $(PY) tests/testhost.py up demo --state-dir $(DEMO_STATE) --ssh-port $(DEMO_SSH_PORT) >/dev/null; \
	fi
	$(FAB) deploy -H demo
	@echo
	@echo "URL:  $(DEMO_URL)"
	@echo "Page: $$(curl -fsS $(DEMO_URL))"
	@echo
	@echo "Edit examples/hello/hello.py, then: $(FAB) deploy -H demo    (make stop: stop the test server)"

stop: venv
	$(PY) tests/testhost.py down --state-dir $(DEMO_STATE)

lint: venv
	$(VENV)/bin/ruff check .

unit: venv
	$(VENV)/bin/pytest -q tests/unit

integration: system-deps venv
	$(VENV)/bin/pytest -q tests/integration

test: system-deps venv lint
	$(VENV)/bin/pytest -q

bench: system-deps venv
	$(PY) bench/run.py
	$(PY) bench/cold.py
	$(PY) bench/fleet.py

# the package, to install into an app's own venv: pip install dist/wsgiship-*.whl
wheel: venv
	rm -rf build
	$(VENV)/bin/pip wheel -q --disable-pip-version-check --no-deps -w dist .
	@ls dist/wsgiship-*.whl

clean: stop
	rm -rf .testhost
