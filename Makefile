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
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash tools/demo.sh

test: $(STAMP)
	$(BIN)/python -m pytest
	$(MAKE) bench-quick

# Every benchmark once, with its assertions, no timing claims: keeps bench/ from rotting.
bench-quick: $(STAMP)
	$(BIN)/python -m pytest bench --benchmark-disable -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python -m pytest bench --benchmark-autosave --benchmark-storage=.benchmarks -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check evcf_fast kernels tests bench tools

clean:
	rm -rf $(VENV) demo_out bench_out .pytest_cache *.egg-info
