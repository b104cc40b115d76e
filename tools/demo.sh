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

# Training on the CPU, narrowed so that both models fit in about a minute (H=200, z=64, K=100,
# batch 100, lr 3e-3, 5 epochs); the full recipes are the presets themselves (README, Training).
quick=(--device cpu --epochs 5 --batch-size 100 --lr 3e-3 --set hidden_size=200
       --set latent_size=64 --quiet)

echo "== 4. train Mult-VAE (Liang et al.'s recipe, narrowed) on the CPU"
evcf train --data "$out/small" --preset multvae-liang "${quick[@]}" --out "$out/runs/multvae"

echo "== 5. train H+Vamp (Gated) (the authors' recipe, narrowed) on the CPU"
evcf train --data "$out/small" --preset evcf-hvamp-gated "${quick[@]}" --set latent2_size=64 \
    --set n_components=100 --set warmup=5 --out "$out/runs/hvamp"

echo "== 6. test metrics of the best validation checkpoints (mean +- standard error)"
"${PYTHON:-python}" - "$out/runs/multvae" "$out/runs/hvamp" <<'PY'
import json
import sys

names = ["Mult-VAE", "H+Vamp (Gated)"]
results = [json.load(open(f"{run}/test.json")) for run in sys.argv[1:]]
print(f"{'metric':<10}" + "".join(f"{name:>22}" for name in names))
for metric in results[0]["metrics"]:
    cells = [r["metrics"][metric] for r in results]
    print(f"{metric:<10}" + "".join(f"{c['mean']:>13.4f} +- {c['stderr']:.4f}" for c in cells))
print(f"{results[0]['n_evaluated']} test users; best epochs: "
      + ", ".join(f"{n} {r['best_epoch']}" for n, r in zip(names, results)))
PY
