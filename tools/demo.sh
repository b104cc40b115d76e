#!/usr/bin/env bash
# `make demo`: the main job end to end on a built-in synthetic dataset, no downloads.
set -euo pipefail
out=${DEMO_OUT:-demo_out}
rm -rf "$out"
mkdir -p "$out"

echo "== 1. synthesise a small MovieLens-format ratings file"
evcf synth --preset small --format movielens --out "$out/raw/ratings.csv" --seed 0

echo "== 2. prepare the strong-generalization split (exact Liang et al. / EVCF procedure)"
evcf prepare "$out/raw/ratings.csv" --out "$out/small" --n-heldout 300

echo "== 3. summary"
evcf info "$out/small"
