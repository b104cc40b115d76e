"""``evcf diagnose``: what a trained VAE's latent layers and VampPrior do with the data.

Examples::

    evcf diagnose runs/hvamp                       # KL per layer, active units, pseudo-inputs
    evcf diagnose runs/multvae runs/hvamp --json diagnosis.json
"""

from __future__ import annotations

import json
from pathlib import Path


def register(subparsers) -> None:
    d = subparsers.add_parser(
        "diagnose", help="KL per latent layer, active units, pseudo-inputs, memorisation",
        description="For each run's best checkpoint: the KL of every latent layer (nats per "
                    "user), its active units (Burda et al.: posterior means that vary over "
                    "users), the VampPrior's pseudo-inputs (mass, nearest real user, mixture "
                    "components in use), and -log p(x|z) per interaction on training users "
                    "against held-out users' fold-in rows (memorisation). Measured on the first "
                    "--users training users and validation users, in evaluation semantics.")
    d.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run directories")
    d.add_argument("--users", type=int, default=2000, metavar="N",
                   help="users of each part to diagnose")
    d.add_argument("--samples", type=int, default=8, metavar="S",
                   help="draws of q per user for the Monte-Carlo KL against a VampPrior")
    d.add_argument("--data", type=Path, help="dataset directory (default: each run's)")
    d.add_argument("--json", type=Path, metavar="PATH", help="also write every number as JSON")
    d.set_defaults(func=cmd_diagnose)


def cmd_diagnose(args) -> int:
    from .._checks import check_int
    from .._io import atomic_file
    from ..train.diagnose import describe, diagnose
    from ..train.inference import load_run

    check_int(args.users, "--users", minimum=1)
    check_int(args.samples, "--samples", minimum=1)
    results = {}
    for run in args.runs:
        model, ds, payload = load_run(run, data=args.data)
        if model.cfg.is_closed_form:
            raise ValueError(f"{str(run)!r} holds a {model.cfg.model} model, which has no latent "
                             f"layers to diagnose; `evcf diagnose` takes VAE and DAE runs")
        result = diagnose(model, train=ds.train, heldout_fold_in=ds.validation_fold_in,
                          max_users=args.users, n_samples=args.samples)
        result["best_epoch"] = payload.get("epoch")
        results[str(run)] = result
        print("\n".join(describe(result, title=f"{run} (epoch {result['best_epoch']}): ")))
    if args.json:
        with atomic_file(args.json) as tmp:
            tmp.write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}")
    return 0
