"""``evcf train``, ``evcf recommend`` and ``evcf plot``.

Examples::

    evcf train --data data/ml20m --preset evcf-hvamp-gated-ml20m --out runs/hvamp
    evcf train --data data/small --model multvae --epochs 20 --batch-size 500 --out runs/mv
    evcf train --out runs/hvamp --resume                 # continue a killed run exactly
    evcf train --data data/ml20m --preset evcf-hvamp-gated-ml20m --out runs/h2 --nproc-per-node 2
    torchrun --nproc-per-node 8 --nnodes 2 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \
        -m evcf_fast train --data data/netflix --preset evcf-hvamp-gated-netflix --out runs/n
    evcf train --data data/small --preset multvae-liang --set anneal_cap=0.3 --out runs/mv2
    evcf train --config runs/mv2/config.json --seed 1 --out runs/mv3   # vary a run
    evcf train --data data/small --preset evcf-baseline --out runs/b --dry-run
    evcf presets                                         # one line per preset
    evcf presets evcf-hvamp-gated                        # every field of one preset
    evcf recommend --run runs/hvamp --user 1234 987 --k 10
    evcf recommend --run runs/hvamp --items 1,32,589
    evcf plot runs/hvamp                                 # -> runs/hvamp/curves.png
    evcf plot runs/mv runs/hvamp --out both.png          # several runs overlaid

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
    return "one of " + ", ".join(_preset_names()) + "; `evcf presets` describes them"


def _preset_names() -> list[str]:
    from ..train.presets import preset_names

    return preset_names()


def register(subparsers) -> None:
    """Add the ``train``, ``recommend`` and ``plot`` subcommands."""
    t = subparsers.add_parser(
        "train", help="train a model on a prepared split and evaluate it on the test users",
        description="Train with EVCF's procedure (per-epoch validation NDCG@100, early stopping, "
                    "best checkpoint evaluated on the test users); the closed-form baselines "
                    "(popularity, itemknn, ease) are fitted once, validated and tested. Settings "
                    "come from the preset (`evcf presets`), else the defaults shown below; "
                    "--config FILE replaces them, flags and --set KEY=VALUE (any ModelConfig/"
                    "TrainConfig field, e.g. --set ease_lambda=500) override the file; a field "
                    "given twice on the command line with different values is an error. The "
                    "resolved configuration is printed at start (--dry-run: only that).")
    g = t.add_argument_group("data and run")
    g.add_argument("--data", type=Path, help="prepared split directory (`evcf prepare`); "
                   "optional with --resume or a --config that names one")
    g.add_argument("--out", type=Path, required=True, help="run directory")
    g.add_argument("--config", type=Path, metavar="FILE",
                   help="settings from a TOML or JSON file (a run's config.json reproduces "
                        "that run); flags and --set override it")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint, exactly")
    g.add_argument("--dry-run", action="store_true",
                   help="print the resolved configuration, model, data and checks, then exit "
                        "without training or writing")
    g.add_argument("--quiet", action="store_true",
                   help="no progress bars and no start summary (one line per epoch stays)")
    g = t.add_argument_group("model")
    g.add_argument("--preset", metavar="NAME",
                   help=f"named recipe ({_preset_help()})")
    g.add_argument("--model", choices=MODEL_NAMES,
                   help="model family (default: the preset's; required without a preset)")
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
    t.set_defaults(func=cmd_train, on_interrupt=train_interrupted)

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

    p = subparsers.add_parser(
        "plot", help="training curves of one or more runs as a PNG",
        description="Panels for the NLL, the KL term (its own scale), beta and the validation "
                    "metric per epoch; several runs are overlaid (one colour each) and the "
                    "title names model, dataset and test NDCG@100.")
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run directories")
    p.add_argument("--out", type=Path,
                   help="PNG path (default: RUN/curves.png for one run; required for several)")
    p.set_defaults(func=cmd_plot)

    s = subparsers.add_parser(
        "presets", help="list the training presets, or print one in full",
        description="Without NAME: one line per preset. With NAME: every ModelConfig and "
                    "TrainConfig field the preset sets, then the defaults it leaves alone.")
    s.add_argument("name", nargs="?", metavar="NAME", help="a preset to print in full")
    s.set_defaults(func=cmd_presets)


def _parse_value(raw: str):
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return {"none": None, "true": True, "false": False}.get(raw.strip().lower(), raw)


def _set_sources(items: list[str]) -> list[tuple[str, dict]]:
    """One ``("--set KEY=VALUE", {key: value})`` source per --set item."""
    sources = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        sources.append((f"--set {item}", {key.strip().replace("-", "_"): _parse_value(raw)}))
    return sources


def parse_set(items: list[str]) -> dict:
    """``["k=v", ...]`` -> dict; values parse as JSON (numbers, true/false/null, lists).

    A key given twice with different values is an error naming both.
    """
    from ..train.config_file import merge_sources

    return merge_sources(*_set_sources(items))


# flag -> config field of the `train` flags that override a field
_FLAGS = {"--model": "model", "--gated": "gated", "--epochs": "epochs",
          "--batch-size": "batch_size", "--lr": "lr", "--optimizer": "optimizer",
          "--max-beta": "max_beta", "--seed": "seed", "--device": "device", "--bf16": "bf16",
          "--tf32": "tf32", "--max-steps": "max_steps"}


def _overrides(args) -> tuple[dict, str | None, Path | None]:
    """(field overrides, preset, data dir) from --config, --set and the flags.

    The command line (--set and flags) overrides the file; within the command line a field
    given twice with different values is an error naming both.
    """
    from ..train.config_file import layer, merge_sources, read_config_file

    flags = []
    for flag, field in _FLAGS.items():
        value = getattr(args, field)
        if value is not None:
            shown = flag if isinstance(value, bool) else f"{flag} {value}"
            flags.append((shown, {field: value}))
    command_line = merge_sources(*_set_sources(args.overrides), *flags)
    preset, data = args.preset, args.data
    if args.config is None:
        return command_line, preset, data
    from_file = read_config_file(args.config)
    file_preset = from_file.pop("preset", None)
    file_data = from_file.pop("data", None)
    if preset is not None and file_preset is not None and preset != file_preset:
        raise ValueError(f"preset is set twice: {file_preset!r} by --config {args.config} and "
                         f"{preset!r} by --preset; give it once")
    return (layer(from_file, command_line), preset or file_preset,
            data if data is not None else (Path(file_data) if file_data else None))


def cmd_train(args) -> int:
    overrides, preset, data = _overrides(args)
    if args.dry_run:
        from ..train.report import dry_run

        print(dry_run(args.out, data=data, preset=preset, overrides=overrides,
                      resume=args.resume))
        return 0
    from ..train import launch
    from ..train.checkpoint import LAST
    from ..train.run_folder import resolve_configs
    from ..train.zoo import fit

    if args.nproc_per_node is not None and not launch.launched():
        # the workers see the same command line and join the group torchrun forms
        return launch.launch_local(args.argv, nproc_per_node=args.nproc_per_node,
                                   max_restarts=args.max_restarts)
    dist = launch.init_from_env(device=str(overrides.get("device", "auto")),
                                timeout_s=args.dist_timeout)
    try:
        # a group restarted by torchrun --max-restarts continues from its last checkpoint
        resume = args.resume or (launch.restarted() and (args.out / LAST).exists())
        data_dir, model_cfg, train_cfg = dist.agree(
            resolve_configs, args.out, data=data, preset=preset, overrides=overrides,
            resume=resume)
        if model_cfg.is_closed_form and dist.world_size > 1:
            raise ValueError(f"model {model_cfg.model!r} is fitted in closed form in one process; "
                             f"run it without --nproc-per-node / torchrun (got "
                             f"{dist.world_size} processes)")
        loop_options = {"dist": dist} if not model_cfg.is_closed_form else {}
        result = fit(data_dir, model_config=model_cfg, train_config=train_cfg, out=args.out,
                     resume=resume, progress=not args.quiet, epoch_lines=True, **loop_options)
    finally:
        launch.shutdown()
    if dist.is_main:
        print(result.summary())
        print(f"run directory: {args.out} (next: evcf plot {args.out}; evcf recommend --run "
              f"{args.out} --user ID; evcf evaluate --run {args.out})")
    return 0


def cmd_presets(args) -> int:
    from ..train.presets import describe_preset, list_presets

    print(list_presets() if args.name is None else describe_preset(args.name))
    return 0


def train_interrupted(args) -> str:
    """What an interrupted (Ctrl-C, SIGTERM) ``evcf train`` saved, and the command that resumes.

    Checkpoints are written atomically at the end of epochs, so the run folder holds the last
    completed checkpoint (or nothing) whatever the moment of the interrupt.
    """
    import shlex

    from ..train.checkpoint import BEST, LAST
    from ..train.run_folder import LOG

    run = Path(args.out)
    if not (run / LAST).is_file():
        return (f"nothing was saved yet (no checkpoint in {run}); run the same command again to "
                f"start over")
    epochs = 0
    try:
        epochs = sum(1 for line in (run / LOG).read_text().splitlines() if line.strip())
    except OSError:
        pass
    saved = f"epoch {epochs}" if epochs else "the last checkpoint"
    best = " and best.pt" if (run / BEST).is_file() else ""
    return (f"{saved} is saved in {run / LAST}{best}; resume exactly with: "
            f"evcf train --out {shlex.quote(str(run))} --resume")


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
    from ..train.plot import plot_runs

    print(plot_runs(args.runs, out=args.out))
    return 0
