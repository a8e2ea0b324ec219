# One command each on a fresh clone: the targets make the environment themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The official SDK lives in its own venv: it pins setuptools<=81 and must not mix with .venv.
# setuptools 81.0.0 (inside its pin) because the venv's default 65.5 cannot find zope.interface's
# normalised dist-info name and the SDK's client-id lookup then raises DistributionNotFound.
SDK_VENV := .venv-sdk
SDK_STAMP := $(SDK_VENV)/.installed

.PHONY: env sdk-env test test-fast lint demo lab browser-deps clean

# PYTHONWARNINGS: setuptools' notice about editable installs is information, not a problem; `make demo` stays quiet.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	PYTHONWARNINGS='ignore:Editable installation' $(PY) -m pip install --quiet -e '.[dev,spark]'
	touch $(STAMP)

env: $(STAMP)

$(SDK_STAMP):
	$(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/python -m pip install --quiet 'cybersource-rest-client-python==0.0.80' 'setuptools==81.0.0'
	touch $(SDK_STAMP)

sdk-env: $(SDK_STAMP)

# Debian's Chromium for the real-browser test and a Java runtime for the Spark tests; installed when
# running as root and missing. Another apt run holding the dpkg lock is waited for (up to 10 min), not failed on.
browser-deps:
	@missing=""; [ -x /usr/bin/chromium ] || missing="chromium"; command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    (apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	     DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq $$missing) >/dev/null; \
	  else echo "missing $$missing: run 'sudo apt-get install $$missing' for the browser and Spark tests"; fi; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) $(SDK_STAMP) browser-deps
	$(VENV)/bin/ruff check .
	RECONKIT_REQUIRE_SDK=1 $(PY) -m pytest -n auto --dist loadgroup

# The library and the sandbox only: no Spark, notebooks, real browser, official SDK or slow tests (see
# tests/conftest.py), and Hypothesis's few-example `dev` profile even where CI is set.
test-fast: $(STAMP)
	HYPOTHESIS_PROFILE=dev $(PY) -m pytest -n auto --dist loadgroup -m "not spark and not notebook and not browser and not sdk and not slow"

demo: $(STAMP)
	$(PY) -m reconkit demo --out out

# Jupyter refuses to run as root without --allow-root; a root shell (a container, CI) is where analysts often try it first.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab $$([ "$$(id -u)" = "0" ] && echo --allow-root) notebooks/

clean:
	rm -rf $(VENV) $(SDK_VENV) out .pytest_cache .ruff_cache
