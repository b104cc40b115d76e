#!/usr/bin/env bash
# One command for a GPU machine (issue 4): the CUDA tests, then full-epoch timings at ML-20M and
# Netflix shape (tools/gpu_bench.py). Extra arguments go to gpu_bench.py, e.g. --shapes ml20m.
# Works from a bare checkout: without an installed evcf_fast it tries an editable install (no
# dependencies) and otherwise runs from PYTHONPATH.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! $PY -c "import evcf_fast.kernels" 2>/dev/null; then
    $PY -m pip install --no-deps --no-build-isolation -q -e . 2>/dev/null \
        || echo "note: evcf_fast not installed; running from PYTHONPATH"
fi
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv,noheader

echo "== CUDA tests (pytest -m gpu)"
# only the modules that carry GPU tests: the others may import polars, which the GPU machine
# lacks, and their collection errors would hide the GPU results
gpu_files=$(grep -l "mark.gpu" tests/test_*.py)
echo "files: $gpu_files"
# shellcheck disable=SC2086
$PY -m pytest -m gpu -q -p no:cacheprovider -rs $gpu_files
tests_rc=$?

echo "== full-epoch timings"
$PY tools/gpu_bench.py "$@"
bench_rc=$?
echo "pytest -m gpu exit code: $tests_rc; gpu_bench.py exit code: $bench_rc"
exit $(( tests_rc == 5 ? bench_rc : tests_rc | bench_rc ))
