# One command each on a fresh clone: the targets make the environment themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: env test lint demo lab browser-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,spark]'
	touch $(STAMP)

env: $(STAMP)

# Debian's Chromium for the real-browser test; installed when running as root and missing.
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null; \
	  else echo "chromium is missing: run 'sudo apt-get install chromium' for the browser test"; fi; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) browser-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m reconkit demo --out out

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
