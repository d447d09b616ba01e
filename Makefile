# a2qflow — make help lists the targets.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMPS := .stamps
PIPQ   := $(PIP) install --quiet --disable-pip-version-check -c requirements/constraints.txt
export YOWASP_CACHE_DIR := $(CURDIR)/.cache/yowasp

A2Q    := $(VENV)/bin/a2qflow
# data directories (see README "Data sets"); override: make tfc-w4a4 MNIST_DIR=~/data/mnist
MNIST_DIR ?= data/mnist
CIFAR_DIR ?= data/cifar10

.PHONY: help install demo test lint bench-train bench-accuracy clean \
        tfc-w2a2 tfc-w4a4 tfc-w8a8 tfc-w4a4-unrolled cnv-w4a4 sweep-tfc report

help:  ## list the targets
	@grep -E '^[a-z0-9 -]+:.*## ' $(MAKEFILE_LIST) \
	  | awk -F':.*## ' '{ printf "%-26s %s\n", $$1, $$2 }'

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

demo: install  ## the default job: TFC W4A4 A2Q+ P=12 on digits, every stage, into build/demo
	$(A2Q) demo --build-dir build/demo

tfc-w2a2 tfc-w4a4 tfc-w8a8: install  ## build TFC on MNIST into builds/<name> (MNIST_DIR=...)
	$(A2Q) build configs/$@.yaml --data-dir $(MNIST_DIR)

tfc-w4a4-unrolled: install  ## TFC W4A4 A2Q+ P=16 everywhere, every layer unrolled (low latency; MNIST_DIR=...)
	$(A2Q) build configs/$@.yaml --data-dir $(MNIST_DIR)

cnv-w4a4: install  ## build CNV W4A4 on CIFAR-10 into builds/cnv-w4a4 (CIFAR_DIR=...; GPU advised)
	$(A2Q) build configs/$@.yaml --data-dir $(CIFAR_DIR)

sweep-tfc: install  ## TFC W4A4 sweep, P 32/16/14/12/10 x A2Q/A2Q+, on a local Dask cluster
	$(A2Q) sweep configs/tfc-w4a4.yaml --data-dir $(MNIST_DIR) \
	  --acc-bits 32,16,14,12,10 --quant a2q,a2q+ --out builds/tfc-w4a4-sweep

report: install  ## report.html/.md over every build and sweep in builds/
	$(if $(wildcard builds/*/),$(A2Q) report $(wildcard builds/*/) --out builds,\
	  @echo "no builds in builds/ yet: run make tfc-w4a4 (or another model) or make sweep-tfc")

test: install $(STAMPS)/system  ## lint and run the whole test suite
	$(PY) -m ruff check a2qflow tests bench
	$(PY) -m pytest -q

lint: install  ## ruff
	$(PY) -m ruff check a2qflow tests bench

bench-train: install  ## TFC W4A4 on MNIST, P in {32,16,12,10}, A2Q and A2Q+ (~4 min on 2 cores)
	$(PY) bench/train_mnist.py --data-dir $(MNIST_DIR) --out bench/out/train_mnist

bench-accuracy: install  ## training recipes side by side, TFC W4A4 on MNIST (~15 min)
	$(PY) bench/accuracy.py --data-dir $(MNIST_DIR) --acc-bits 10,8,7 --out bench/out/acc_hidden
	$(PY) bench/accuracy.py --data-dir $(MNIST_DIR) --policy all --acc-bits 16,14,12 \
	  --out bench/out/acc_all

clean:  ## remove builds and caches (keeps .venv and the tool caches)
	rm -rf build builds .pytest_cache .ruff_cache .hypothesis
