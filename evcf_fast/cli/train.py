"""``evcf train``, ``evcf recommend`` and ``evcf plot``.

Examples::

    evcf train --data data/ml20m --preset evcf-hvamp-gated-ml20m --out runs/hvamp
    evcf train --data data/small --model multvae --epochs 20 --batch-size 500 --out runs/mv
    evcf train --out runs/hvamp --resume                 # continue a killed run exactly
    evcf train --data data/ml20m --preset evcf-hvamp-gated-ml20m --out runs/h2 --nproc-per-node 2
    torchrun --nproc-per-node 8 --nnodes 2 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \
        -m evcf_fast train --data data/netflix --preset evcf-hvamp-gated-netflix --out runs/n
    evcf train --data data/small --preset multvae-liang --set anneal_cap=0.3 --out runs/mv2
    evcf recommend --run runs/hvamp --user 1234 987 --k 10
    evcf recommend --run runs/hvamp --items 1,32,589
    evcf plot runs/hvamp                                 # -> runs/hvamp/curves.png

Heavy libraries are imported inside the command functions so ``evcf --help`` stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..models.config import MODEL_NAMES
from ..train.config import DEVICES, DIST_TIMEOUT_S, OPTIMIZERS, TrainConfig


def _default(field: str) -> str:
    """A flag's help suffix: the preset decides, else TrainConfig's own default."""
    return f"(default: the preset's, else {getattr(TrainConfig, field)!r})"


def _preset_help() -> str:
    from ..train.presets import PRESETS

    return "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values())


def register(subparsers) -> None:
    """Add the ``train``, ``recommend`` and ``plot`` subcommands."""
    t = subparsers.add_parser(
        "train", help="train a model on a prepared split and evaluate it on the test users",
        description="Train with EVCF's procedure (per-epoch validation NDCG@100, early stopping, "
                    "best checkpoint evaluated on the test users). Flags override the preset; "
                    "--set KEY=VALUE overrides any ModelConfig/TrainConfig field.")
    g = t.add_argument_group("data and run")
    g.add_argument("--data", type=Path, help="prepared split directory (`evcf prepare`); "
                   "optional with --resume")
    g.add_argument("--out", type=Path, required=True, help="run directory")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint, exactly")
    g.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")
    g = t.add_argument_group("model")
    g.add_argument("--preset", help=f"named recipe ({_preset_help()})")
    g.add_argument("--model", choices=MODEL_NAMES,
                   help="model family (default: the preset's, else multvae)")
    g.add_argument("--gated", action="store_true", default=None, help="GLU hidden layers")
    g = t.add_argument_group("training")
    g.add_argument("--epochs", type=int, help=f"maximum epochs {_default('epochs')}")
    g.add_argument("--batch-size", type=int,
                   help=f"training users per step {_default('batch_size')}")
    g.add_argument("--lr", type=float, help=f"learning rate {_default('lr')}")
    g.add_argument("--optimizer", choices=OPTIMIZERS, help=_default("optimizer"))
    g.add_argument("--max-beta", type=float,
                   help=f"KL weight after the warm-up {_default('max_beta')}")
    g.add_argument("--seed", type=int, help=_default("seed"))
    g.add_argument("--max-steps", type=int, metavar="S",
                   help="stop after S optimizer steps (a cap for smoke runs and measurements; "
                        "the epoch in progress is validated and checkpointed)")
    g.add_argument("--device", choices=DEVICES, help=_default("device"))
    g.add_argument("--bf16", action="store_true", default=None, help="bf16 autocast (CUDA)")
    g.add_argument("--tf32", action="store_true", default=None, help="TF32 matmuls (CUDA)")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set hidden_size=300 --set "
                        "patience=null (values parse as JSON, else as strings)")
    g = t.add_argument_group(
        "distributed (torch.distributed; see the README's \"Distributed training\")")
    g.add_argument("--nproc-per-node", type=int, metavar="N",
                   help="run on N local processes through torchrun (one per GPU with CUDA, gloo "
                        "on the CPU); --batch-size stays the global batch. Several machines: "
                        "`torchrun ... -m evcf_fast train ...`")
    g.add_argument("--max-restarts", type=int, default=0, metavar="K",
                   help="with --nproc-per-node: restart the group up to K times after a "
                        "failure; it resumes from the last checkpoint (default: 0)")
    g.add_argument("--dist-timeout", type=float, default=DIST_TIMEOUT_S, metavar="SECONDS",
                   help=f"rendezvous and collective timeout (default: {DIST_TIMEOUT_S:g})")
    t.set_defaults(func=cmd_train)

    r = subparsers.add_parser(
        "recommend", help="top-k items for users of a run's dataset or an ad-hoc item list",
        description="Top-k recommendations of a run's best checkpoint. A held-out user's input is "
                    "their fold-in history, a training user's their whole row; history items "
                    "are never recommended.")
    r.add_argument("--run", type=Path, required=True, help="run directory")
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", nargs="+", metavar="ID", help="raw user id(s)")
    who.add_argument("--items", metavar="I1,I2,...", help="comma-separated raw item ids")
    r.add_argument("--k", type=int, default=10)
    r.add_argument("--data", type=Path, help="dataset directory (default: the run's)")
    r.add_argument("--device", choices=DEVICES, default="cpu", help="(default: cpu)")
    r.add_argument("--json", action="store_true", help="print JSON instead of a table")
    r.set_defaults(func=cmd_recommend)

    p = subparsers.add_parser("plot", help="training curves of a run as a PNG")
    p.add_argument("run", type=Path, help="run directory")
    p.add_argument("--out", type=Path, help="PNG path (default RUN/curves.png)")
    p.set_defaults(func=cmd_plot)


def parse_set(items: list[str]) -> dict:
    """``["k=v", ...]`` -> dict; values parse as JSON (numbers, true/false/null, lists)."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = {"none": None, "true": True, "false": False}.get(raw.strip().lower(), raw)
        out[key.strip().replace("-", "_")] = value
    return out


def _overrides(args) -> dict:
    flags = {"model": args.model, "gated": args.gated, "epochs": args.epochs,
             "batch_size": args.batch_size, "lr": args.lr, "optimizer": args.optimizer,
             "max_beta": args.max_beta, "seed": args.seed, "device": args.device,
             "bf16": args.bf16, "tf32": args.tf32, "max_steps": args.max_steps}
    return {**parse_set(args.overrides), **{k: v for k, v in flags.items() if v is not None}}


def cmd_train(args) -> int:
    from ..train import launch
    from ..train.checkpoint import LAST
    from ..train.loop import fit
    from ..train.run_folder import resolve_configs

    if args.nproc_per_node is not None and not launch.launched():
        # the workers see the same command line and join the group torchrun forms
        return launch.launch_local(args.argv, nproc_per_node=args.nproc_per_node,
                                        max_restarts=args.max_restarts)
    overrides = _overrides(args)
    dist = launch.init_from_env(device=str(overrides.get("device", "auto")),
                                     timeout_s=args.dist_timeout)
    try:
        # a group restarted by torchrun --max-restarts continues from its last checkpoint
        resume = args.resume or (launch.restarted() and (args.out / LAST).exists())
        data_dir, model_cfg, train_cfg = dist.agree(
            resolve_configs, args.out, data=args.data, preset=args.preset, overrides=overrides,
            resume=resume)
        result = fit(data_dir, model_config=model_cfg, train_config=train_cfg, out=args.out,
                     resume=resume, progress=not args.quiet, dist=dist)
    finally:
        launch.shutdown()
    if dist.is_main:
        print(result.summary())
        print(f"run directory: {args.out}")
    return 0


def cmd_recommend(args) -> int:
    from ..train.inference import item_history, load_run, top_k, user_histories

    model, ds, _ = load_run(args.run, data=args.data, device=args.device)
    if args.items is not None:
        raw = [s.strip() for s in args.items.split(",") if s.strip()]
        if not raw:
            raise ValueError("--items expects a comma-separated list of item ids, got ''")
        histories, names, where = item_history(ds, raw), ["(items)"], ["ad-hoc history"]
    else:
        histories, where = user_histories(ds, args.user)
        names = list(args.user)
    items, scores = top_k(model, histories, k=args.k, device=args.device)
    item_ids = [str(i) for i in ds.item_ids.tolist()]
    out = []
    for name, src, row_items, row_scores in zip(names, where, items, scores):
        recs = [{"rank": r + 1, "item": item_ids[c], "score": float(s)}
                for r, (c, s) in enumerate(zip(row_items.tolist(), row_scores.tolist()))
                if c >= 0]
        out.append({"user": name, "history": src, "recommendations": recs})
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print("user\thistory\trank\titem\tscore")
        for u in out:
            for rec in u["recommendations"]:
                print(f"{u['user']}\t{u['history']}\t{rec['rank']}\t{rec['item']}\t"
                      f"{rec['score']:.6g}")
    return 0


def cmd_plot(args) -> int:
    from ..train.plot import plot_run

    print(plot_run(args.run, out=args.out))
    return 0
