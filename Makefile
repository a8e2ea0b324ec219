# One command each on a fresh clone: the targets make the environment themselves, each installing
# only what it needs. .venv holds the library and what an analyst uses (JupyterLab, widgets,
# matplotlib, the notebook runner the demo uses); the test tools (dev) and PySpark (spark, about
# 500 MB, for notebook 03 only) are added on top by the targets that need them, once each.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
SPARK_STAMP := $(VENV)/.installed-spark
# The official SDK lives in its own venv: it pins setuptools<=81 and must not mix with .venv.
# setuptools 81.0.0 (inside its pin) because the venv's default 65.5 cannot find zope.interface's
# normalised dist-info name and the SDK's client-id lookup then raises DistributionNotFound.
SDK_VENV := .venv-sdk
SDK_STAMP := $(SDK_VENV)/.installed

.PHONY: env dev-env spark-env sdk-env test test-fast lint demo lab browser-deps clean

# PYTHONWARNINGS: setuptools' notice about editable installs is information, not a problem; `make demo` stays quiet.
# --no-compile: pip would byte-compile every module of every package (half of the install's CPU time);
# Python compiles the ones a command imports the first time it imports them, and keeps them.
INSTALL := PYTHONWARNINGS='ignore:Editable installation' $(PY) -m pip install --quiet --no-compile
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(INSTALL) -e .
	touch $(STAMP)

# An extra is installed on top of the base (again when pyproject.toml or the base changes); its stamp
# says it is there, so a later target does not install it again.
$(DEV_STAMP): $(STAMP)
	$(INSTALL) -e '.[dev]'
	touch $(DEV_STAMP)

$(SPARK_STAMP): $(STAMP)
	$(INSTALL) -e '.[spark]'
	touch $(SPARK_STAMP)

env: $(STAMP)
dev-env: $(DEV_STAMP)
# PySpark for notebook 03 and reconkit.spark (a local session also needs Java 17).
spark-env: $(SPARK_STAMP)

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

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .

test: $(DEV_STAMP) $(SPARK_STAMP) $(SDK_STAMP) browser-deps
	$(VENV)/bin/ruff check .
	RECONKIT_REQUIRE_SDK=1 $(PY) -m pytest -n auto --dist loadgroup

# The library and the sandbox only: no Spark, notebooks, real browser, official SDK or slow tests (see
# tests/conftest.py), and Hypothesis's few-example `dev` profile even where CI is set.
test-fast: $(DEV_STAMP)
	HYPOTHESIS_PROFILE=dev $(PY) -m pytest -n auto --dist loadgroup -m "not spark and not notebook and not browser and not sdk and not slow"

demo: $(STAMP)
	$(PY) -m reconkit demo --out out

# Jupyter refuses to run as root without --allow-root; a root shell (a container, CI) is where analysts often try it first.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab $$([ "$$(id -u)" = "0" ] && echo --allow-root) notebooks/

clean:
	rm -rf $(VENV) $(SDK_VENV) out .pytest_cache .ruff_cache
