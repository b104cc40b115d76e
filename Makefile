# evcf_fast: `make demo` and `make test` work on a fresh machine; each installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.evcf-installed

# PyTorch (the `train` extra): a CUDA build where an NVIDIA GPU answers, the CPU wheel otherwise.
# Where a local wheel directory (PIP_FIND_LINKS, default /opt/wheels) holds a torch wheel, its
# version is taken from the wheel's file name; elsewhere the CPU wheel comes from PyTorch's CPU
# index so that a GPU-less box does not download CUDA (6 GB).
HAVE_GPU    := $(shell nvidia-smi >/dev/null 2>&1 && echo 1)
LOCAL_TORCH := $(shell ls $${PIP_FIND_LINKS:-/opt/wheels}/torch-*.whl 2>/dev/null | sort -V | tail -n 1)
# torch-2.13.0+cpu-cp311-...whl -> 2.13.0+cpu
LOCAL_TORCH_VERSION := $(word 2,$(subst -, ,$(notdir $(LOCAL_TORCH))))
ifeq ($(HAVE_GPU),1)
TORCH_INSTALL ?= "torch>=2.4"
else ifneq ($(LOCAL_TORCH_VERSION),)
TORCH_INSTALL ?= "torch==$(LOCAL_TORCH_VERSION)"
else
TORCH_INSTALL ?= "torch>=2.4" --index-url https://download.pytorch.org/whl/cpu
endif

# `make test-min`: the suite against the oldest versions pyproject.toml allows
MIN_VENV := .venv-min
MIN_CONSTRAINTS := .ci/min-constraints.txt

.PHONY: install demo test test-min test-fast bench bench-quick bench-compare bench-report lint clean

install: $(STAMP)

# everything: the package with its train (torch), tensorboard and dev extras
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(TORCH_INSTALL)
	$(BIN)/python -m pip install -e ".[train,tensorboard,dev,conformance,sweep]"
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash tools/demo.sh

test: $(STAMP)
	$(BIN)/python -m pytest
	$(MAKE) bench-quick

# The tests against the lower bounds of pyproject.toml (.ci/min-constraints.txt pins them; torch
# is the build TORCH_INSTALL picks, the oldest this machine can get). A separate venv.
test-min: $(MIN_VENV)/.evcf-installed
	NUMBA_CACHE_DIR=$(MIN_VENV)/numba-cache $(MIN_VENV)/bin/python -m pytest -q -p no:cacheprovider

$(MIN_VENV)/.evcf-installed: pyproject.toml Makefile $(MIN_CONSTRAINTS)
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install $(TORCH_INSTALL)
	$(MIN_VENV)/bin/python -m pip install -c $(MIN_CONSTRAINTS) -e ".[train,dev]"
	touch $@

# Every benchmark once, with its assertions, no timing claims: keeps bench/ from rotting.
bench-quick: $(STAMP)
	$(BIN)/python -m pytest bench --benchmark-disable -q -p no:cacheprovider

# Full sizes, saved as .benchmarks/<machine>/NNNN_<commit>_<date>.json with every round
# (--benchmark-save-data, for the bootstrap of bench-compare) and machine/library metadata.
# Select with BENCH_ARGS, e.g. make bench BENCH_ARGS='-k "calibration or metrics"'.
bench: $(STAMP)
	$(BIN)/python -m pytest bench --benchmark-autosave --benchmark-save-data \
		--benchmark-storage=.benchmarks -p no:cacheprovider $(BENCH_ARGS)

# The two newest saved runs, or BASELINE=0003 CANDIDATE=0007; exits 1 on a regression.
bench-compare: $(STAMP)
	$(BIN)/evcf bench compare $(BASELINE) $(CANDIDATE) --storage .benchmarks $(COMPARE_ARGS)

# Markdown table + PNG plots of every saved run.
bench-report: $(STAMP)
	$(BIN)/evcf bench report --storage .benchmarks --out bench_out/report --overwrite

lint: $(STAMP)
	$(BIN)/ruff check evcf_fast kernels tests bench tools

clean:
	rm -rf $(VENV) $(MIN_VENV) demo_out bench_out .pytest_cache *.egg-info
