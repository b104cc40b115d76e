"""``evcf prepare | synth | info | export``: the data-engine subcommands.

Examples::

    evcf synth --preset small --format movielens --out raw/ratings.csv --seed 0
    evcf prepare raw/ratings.csv --out data/small --n-heldout 300
    evcf prepare ml-20m/ratings.csv --out data/ml20m --n-heldout 10000
    evcf prepare netflix/combined_data_*.txt --out data/netflix --n-heldout 40000
    evcf prepare clicks.parquet --user-col visitor --item-col page --implicit --out data/clicks \\
        --n-heldout 1000
    evcf prepare EVCF/datasets/ML_20m --format presplit --out data/ml20m-authors
    evcf info data/ml20m
    evcf export data/ml20m --out ml20m-presplit

Heavy imports (Polars, NumPy, Numba kernels) happen inside the command functions, so that
``evcf --help`` stays instant.
"""

from __future__ import annotations

import argparse

from ..data.config import PREPARE_FORMATS, SplitConfig

# synthetic.PRESETS imports NumPy and Polars; `evcf --help` must not, so the names are listed
# here and tests/test_data_cli.py checks them against the library's table.
_PRESETS = ("small", "ml20m", "netflix")
_HELDOUT_PCT = round(100 * SplitConfig.heldout_fraction)


def register(subparsers) -> None:
    """Add the data subcommands to the ``evcf`` parser."""
    p = subparsers.add_parser(
        "prepare", help="raw interaction files -> strong-generalization split directory",
        description="Read raw interactions (MovieLens, Netflix Prize, CSV/TSV/Parquet, or the "
                    "authors' pre-split files), apply the Liang et al. / EVCF preprocessing "
                    f"(rating > {SplitConfig.min_rating}, users with >= "
                    f"{SplitConfig.min_user_count} interactions, seed-{SplitConfig.seed} user "
                    f"permutation, {100 - _HELDOUT_PCT}/{_HELDOUT_PCT} fold-in split of held-out "
                    "users) and write the dataset directory "
                    "atomically. The split is identical to the reference notebook's unless "
                    "--fast is given.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="input files or directories (several files are concatenated in order)")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.add_argument("--n-heldout", type=int, default=None,
                   help="validation users, and test users (10000 for ML-20M, 40000 for "
                        "Netflix); required unless --format presplit")
    p.add_argument("--format", choices=PREPARE_FORMATS, default="auto",
                   help="input format (default: detected from names and first lines)")
    rating = p.add_mutually_exclusive_group()
    rating.add_argument("--min-rating", type=float, default=SplitConfig.min_rating,
                        help="keep rows with rating > this (default: %(default)s)")
    rating.add_argument("--implicit", action="store_true",
                        help="implicit data: every row is a positive, no rating filter")
    p.add_argument("--min-user-count", type=int, default=SplitConfig.min_user_count,
                   help="keep users with at least this many positives (default: %(default)s)")
    p.add_argument("--seed", type=int, default=SplitConfig.seed,
                   help="split seed (default: %(default)s)")
    p.add_argument("--heldout-fraction", type=float, default=SplitConfig.heldout_fraction,
                   help="share of each held-out user's items used as targets "
                        "(default: %(default)s)")
    p.add_argument("--fast", action="store_true",
                   help="vectorised 80/20 draw: faster, statistically equivalent, NOT identical "
                        "to the reference notebook's split")
    cols = p.add_argument_group("columns (generic CSV/TSV/Parquet)")
    cols.add_argument("--user-col", help="user id column (name, or 0-based position without a "
                                         "header)")
    cols.add_argument("--item-col", help="item id column")
    cols.add_argument("--rating-col", help="rating column")
    cols.add_argument("--timestamp-col", help="timestamp column")
    cols.add_argument("--separator", help="field separator (default: sniffed)")
    header = cols.add_mutually_exclusive_group()
    header.add_argument("--header", dest="has_header", action="store_true", default=None,
                        help="the files start with a header line")
    header.add_argument("--no-header", dest="has_header", action="store_false",
                        help="the files have no header line")
    p.add_argument("--drop-invalid-ratings", action="store_true",
                   help="drop rows whose rating is empty, NaN or infinite and count them in the "
                        "summary (default: stop with an error naming the file and line)")
    p.add_argument("--string-ids", action="store_true",
                   help="read every user and item id as text (default: integers, or text when "
                        "no id looks like an integer; a mix is an error)")
    p.add_argument("--no-hash", action="store_true",
                   help="do not record sha256 hashes of the inputs")
    _common(p)
    p.set_defaults(func=cmd_prepare)

    s = subparsers.add_parser(
        "synth", help="write a seeded synthetic dataset (MovieLens / Netflix files or a split)",
        description="Synthetic interactions with long-tailed popularity and activity and latent "
                    "taste clusters. Presets: small (demo/tests), ml20m and netflix (the shapes "
                    "of the preprocessed ML-20M and Netflix sets).")
    s.add_argument("--preset", choices=_PRESETS, default="small")
    s.add_argument("--format", choices=("movielens", "netflix", "split"), default="movielens",
                   help="movielens: one ratings.csv file; netflix: a directory of "
                        "combined_data_*.txt; split: a prepared dataset directory")
    s.add_argument("--out", required=True, help="output file (movielens) or directory")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--n-heldout", type=int, default=None,
                   help="for --format split: validation/test users (default: the preset's)")
    _common(s)
    s.set_defaults(func=cmd_synth)

    i = subparsers.add_parser("info", help="print the summary of a dataset directory")
    i.add_argument("dataset", help="dataset directory (from evcf prepare or evcf synth)")
    i.add_argument("--json", action="store_true", help="print meta.json instead")
    i.add_argument("--verify", action="store_true",
                   help="also check every array file against the sha256 checksums recorded in "
                        "meta.json (the structure of every matrix is always checked)")
    i.set_defaults(func=cmd_info)

    e = subparsers.add_parser(
        "export", help="write a dataset in the authors' pre-split layout",
        description="Write train.csv, validation_tr.csv, validation_te.csv, test_tr.csv, "
                    "test_te.csv (header uid,sid) and unique_sid.txt, as the EVCF / Mult-VAE "
                    "code reads them (plus unique_uid.txt with the raw user ids).")
    e.add_argument("dataset", help="dataset directory")
    e.add_argument("--out", required=True, help="directory to create")
    e.add_argument("--format", choices=("presplit",), default="presplit")
    _common(e)
    e.set_defaults(func=cmd_export)
    for q in (p, s, i, e):  # see evcf_fast.cli.main._exit_at_once
        q.set_defaults(exit_at_once=True)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_prepare(args: argparse.Namespace) -> int:
    from ..data.pipeline import prepare

    ds = prepare(args.inputs, args.out, n_heldout=args.n_heldout, format=args.format,
                 user_col=args.user_col, item_col=args.item_col, rating_col=args.rating_col,
                 timestamp_col=args.timestamp_col, separator=args.separator,
                 has_header=args.has_header,
                 min_rating=None if args.implicit else args.min_rating,
                 min_user_count=args.min_user_count, seed=args.seed,
                 heldout_fraction=args.heldout_fraction, exact=not args.fast,
                 overwrite=args.overwrite, progress=not args.quiet,
                 hash_sources=not args.no_hash,
                 invalid_ratings="drop" if args.drop_invalid_ratings else "error",
                 id_type="string" if args.string_ids else "auto")
    if not args.quiet:
        shapes = ", ".join(f"{n} {getattr(ds, a).shape[0]:,}" for n, a in (
            ("train", "train"), ("validation", "validation_fold_in"), ("test", "test_fold_in")))
        print(f"wrote {args.out}: users {shapes}; {ds.n_items:,} items "
              f"(evcf info {args.out} for the summary)")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from ..data.synthetic import synthesize

    path = synthesize(args.preset, args.out, format=args.format, seed=args.seed,
                      n_heldout=args.n_heldout, overwrite=args.overwrite,
                      progress=not args.quiet)
    if not args.quiet:
        print(f"wrote {path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import json

    from ..data.dataset import SplitDataset

    ds = SplitDataset.load(args.dataset)
    print(json.dumps(ds.meta, indent=2) if args.json else ds.summary())
    if args.verify:
        n = SplitDataset.verify_checksums(args.dataset)
        print(f"verified     {n} array files match their sha256 in meta.json" if n else
              "verified     matrix structure only: this dataset records no checksums (saved by "
              "an older evcf_fast; re-create it with `evcf prepare` to add them)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..data.dataset import SplitDataset
    from ..data.export import export_presplit

    ds = SplitDataset.load(args.dataset)
    path = export_presplit(ds, args.out, overwrite=args.overwrite, progress=not args.quiet,
                           inputs=[args.dataset])
    if not args.quiet:
        print(f"wrote {path}")
    return 0
