#!/usr/bin/env bash
# `make demo`: the main job end to end on a built-in synthetic dataset, no downloads, about a
# minute or two of CPU time: data -> split -> two baselines and two VAEs -> test metrics.
set -euo pipefail
out=${DEMO_OUT:-demo_out}
py=${PYTHON:-python}
rm -rf "$out"
mkdir -p "$out"
# small models on a small CPU: one thread per op is faster than several competing ones
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
start=$SECONDS

say() { printf '\n== %s\n' "$*"; }

say "1/6 synthesise a MovieLens-format ratings file (4,000 users x 1,500 items, taste clusters)"
evcf synth --preset small --format movielens --out "$out/raw/ratings.csv" --seed 0 --quiet
echo "wrote $out/raw/ratings.csv: user,item,rating,timestamp rows like MovieLens' ratings.csv"

say "2/6 prepare the strong-generalization split (Liang et al. / EVCF, exact)"
echo "ratings > 3.5 become positives; 300 validation and 300 test users are held out entirely;"
echo "for each of them 80% of the items are the model's input (fold-in), 20% are hidden targets."
evcf prepare "$out/raw/ratings.csv" --out "$out/small" --n-heldout 300 --quiet >/dev/null
evcf info "$out/small"
uid=$("$py" -c "import sys; from evcf_fast.data.dataset import SplitDataset as S; \
print(S.load(sys.argv[1]).test_user_ids[0])" "$out/small")

say "3/6 fit two baselines: popularity (every user gets the most popular items) and EASE"
echo "EASE (Steck, WWW 2019) is a closed-form linear item-item model, the strongest simple baseline"
echo "of the paper's tables; both fit in seconds and are tested exactly like the VAEs below."
evcf train --data "$out/small" --model popularity --device cpu --quiet --out "$out/runs/popularity" \
    >/dev/null
evcf train --data "$out/small" --model ease --set ease_lambda=200 --device cpu --quiet \
    --out "$out/runs/ease" >/dev/null

# Training on the CPU, narrowed so that both models train in about a minute of CPU time
# (H=200, z=64, K=100, batch 100, lr 3e-3, 5 epochs); the full recipes are the presets
# themselves (`evcf presets NAME`).
quick=(--device cpu --epochs 5 --batch-size 100 --lr 3e-3 --set hidden_size=200
       --set latent_size=64 --quiet)

say "4/6 train Mult-VAE (Liang et al.'s recipe, narrowed to 5 epochs) on the CPU"
echo "one line per epoch: training loss = NLL + beta * KL, then NDCG@100 on the validation users"
echo "(* = best so far: that checkpoint is kept and tested at the end)"
evcf train --data "$out/small" --preset multvae-liang "${quick[@]}" --out "$out/runs/multvae" \
    >/dev/null

say "5/6 train H+Vamp (Gated) (the authors' recipe, narrowed) on the CPU"
evcf train --data "$out/small" --preset evcf-hvamp-gated "${quick[@]}" --set latent2_size=64 \
    --set n_components=100 --set warmup=5 --out "$out/runs/hvamp" >/dev/null

say "6/6 test metrics of the best validation checkpoints (300 test users, mean +- standard error)"
"$py" - "$out/runs/popularity" "$out/runs/ease" "$out/runs/multvae" "$out/runs/hvamp" <<'PY'
import json
import sys

names = ["popularity", "EASE", "Mult-VAE", "H+Vamp (Gated)"]
results = [json.load(open(f"{run}/test.json")) for run in sys.argv[1:]]
print(f"{'metric':<10}" + "".join(f"{name:>20}" for name in names))
for metric in results[0]["metrics"]:
    cells = [r["metrics"][metric] for r in results]
    print(f"{metric:<10}" + "".join(f"{c['mean']:>11.4f} +- {c['stderr']:.4f}" for c in cells))
print(f"{results[0]['n_evaluated']} test users; best epochs (by validation NDCG@100): "
      + ", ".join(f"{n} {r['best_epoch']}" for n, r in zip(names[2:], results[2:])))
PY
cat <<EOF

What the numbers mean: for each test user the model sees the fold-in 80% of their items and
ranks every other item; NDCG@k rewards hidden items near the top of that ranking (1 = all of
them first), Recall@k = hidden items in the top k / min(k, number hidden), so Recall@1 can exceed
Recall@5. The +- is one standard error over users: differences smaller than about two of them are
noise. Popularity is the floor any personalised model must clear; EASE is the bar the paper's
VAEs claim to beat (on ML-20M and Netflix). The VAEs here are 5-epoch runs of narrowed models,
not the papers' numbers (those take hundreds of epochs on ML-20M / Netflix; see the README).

Demo finished in $((SECONDS - start)) s; everything is in $out/. Next, try:
  evcf plot $out/runs/multvae $out/runs/hvamp --out $out/curves.png
      training curves of both runs (NLL, KL, beta, validation NDCG@100)
  evcf recommend --run $out/runs/hvamp --user $uid --k 10
      the top 10 items for test user $uid (their fold-in items are never recommended)
  evcf compare $out/runs/ease $out/runs/multvae $out/runs/hvamp --baseline ease
      are the runs' test metrics different beyond noise? (paired tests, per user)
  evcf train --config $out/runs/hvamp/config.json --epochs 50 --out $out/runs/hvamp50
      the same run, longer (any flag varies a run's config.json)
EOF
