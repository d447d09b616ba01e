# a2qflow — make help lists the targets.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMPS := .stamps
PIPQ   := $(PIP) install --quiet --disable-pip-version-check -c requirements/constraints.txt
export YOWASP_CACHE_DIR := $(CURDIR)/.cache/yowasp

.PHONY: help install demo test lint bench-train clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

install: $(STAMPS)/a2qflow  ## create .venv (Python 3.11) with the whole pinned toolchain

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# torch first, from the local CPU wheel; the constraints file keeps every later step on it.
$(STAMPS)/torch: requirements/constraints.txt | $(VENV)/bin/python
	$(PIPQ) torch==2.13.0
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/toolchain: $(STAMPS)/torch requirements/toolchain.txt requirements/constraints.txt
	$(PIPQ) -r requirements/toolchain.txt
	# finn-plus pins brevitas 0.13.0; we install it without its deps (they are in toolchain.txt).
	$(PIPQ) --no-deps finn-plus==1.6.1
	@touch $@

# Debian packages used by the tests: chromium renders the HTML report in a real browser;
# dataset-fashion-mnist is the Fashion-MNIST data set.
# Needs root (CI and the dev machines are); elsewhere the render test skips with a reason.
$(STAMPS)/system:
	@{ command -v chromium && [ -d /usr/share/datasets/fashion-mnist ]; } >/dev/null 2>&1 \
	  || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq \
	       --no-install-recommends chromium dataset-fashion-mnist; } \
	  || echo "warning: could not install chromium/fashion-mnist; those tests will skip"
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/a2qflow: $(STAMPS)/toolchain pyproject.toml
	$(PIPQ) --no-deps --no-build-isolation -e .
	$(PY) -m a2qflow.doctor
	@touch $@

demo: install  ## train + export TFC (A2Q+, P=12) on scikit-learn digits into build/demo
	$(PY) -m a2qflow.cli demo --build-dir build/demo

test: install $(STAMPS)/system  ## lint and run the whole test suite
	$(PY) -m ruff check a2qflow tests bench
	$(PY) -m pytest -q

lint: install  ## ruff
	$(PY) -m ruff check a2qflow tests bench

bench-train: install  ## TFC W4A4 on MNIST, P in {32,16,12,10}, A2Q and A2Q+ (by hand; ~1 h on 2 cores)
	$(PY) bench/train_mnist.py --data-dir ../shared/data/mnist --out bench/out/train_mnist

clean:  ## remove builds and caches (keeps .venv)
	rm -rf build .pytest_cache .ruff_cache .hypothesis
