# evcf_fast: `make demo` and `make test` work on a fresh machine; each installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.evcf-installed

# A CUDA build of torch where an NVIDIA GPU answers, the CPU wheel otherwise. Where a local
# wheel directory already provides torch (PIP_FIND_LINKS) pip takes it from there; elsewhere the
# CPU wheel comes from PyTorch's CPU index so that a GPU-less box does not download CUDA.
HAVE_GPU   := $(shell nvidia-smi >/dev/null 2>&1 && echo 1)
LOCAL_TORCH := $(shell ls $${PIP_FIND_LINKS:-/opt/wheels}/torch-*.whl 2>/dev/null | head -n 1)
ifeq ($(HAVE_GPU),1)
TORCH_INSTALL ?= "torch>=2.4"
else ifneq ($(LOCAL_TORCH),)
TORCH_INSTALL ?= "torch==2.13.0"
else
TORCH_INSTALL ?= "torch>=2.4" --index-url https://download.pytorch.org/whl/cpu
endif

.PHONY: install demo test test-fast bench bench-quick bench-compare bench-report lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(TORCH_INSTALL)
	$(BIN)/python -m pip install -e ".[dev,conformance,sweep]"
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash tools/demo.sh

test: $(STAMP)
	$(BIN)/python -m pytest
	$(MAKE) bench-quick

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
	rm -rf $(VENV) demo_out bench_out .pytest_cache *.egg-info
