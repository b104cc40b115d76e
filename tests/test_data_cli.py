"""``evcf synth | prepare | info | export`` through evcf_fast.cli.main, as a user runs them."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from evcf_fast.cli import main
from evcf_fast.data.dataset import SplitDataset


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    path = tmp_path_factory.mktemp("raw") / "ratings.csv"
    assert main(["synth", "--preset", "small", "--format", "movielens", "--out", str(path),
                 "--seed", "0", "--quiet"]) == 0
    return path


def test_synth_prepare_info_export(tmp_path, raw, capsys, monkeypatch):
    import evcf_fast._progress

    out = tmp_path / "small"
    # a terminal: the progress bar goes to stderr (captured stderr is not one: no bar there)
    monkeypatch.setattr(evcf_fast._progress, "bars_visible", lambda: True)
    assert main(["prepare", str(raw), "--out", str(out), "--n-heldout", "300"]) == 0
    printed = capsys.readouterr()
    assert f"wrote {out}: users train 3,400, validation 300, test 300; 1,500 items" in \
        printed.out
    assert "prepare" in printed.err
    monkeypatch.undo()

    assert main(["info", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "users        4,000 = train 3,400 + validation 300 + test 300" in summary
    assert "exact (notebook-identical)" in summary

    assert main(["info", str(out), "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["params"]["n_heldout"] == 300

    assert main(["export", str(out), "--out", str(tmp_path / "pro_sg"), "--quiet"]) == 0
    assert (tmp_path / "pro_sg" / "test_te.csv").read_text().startswith("uid,sid\n")
    assert capsys.readouterr().out == ""


def test_prepare_options_reach_the_library(tmp_path, raw):
    out = tmp_path / "ds"
    assert main(["prepare", str(raw), "--out", str(out), "--n-heldout", "100", "--min-rating",
                 "4.0", "--min-user-count", "10", "--seed", "7", "--heldout-fraction", "0.5",
                 "--fast", "--quiet", "--no-hash"]) == 0
    meta = SplitDataset.load(out).meta
    assert meta["params"] == {"n_heldout": 100, "min_rating": 4.0, "min_user_count": 10,
                              "seed": 7, "heldout_fraction": 0.5, "exact": False}
    assert "sha256" not in meta["sources"][0]


def test_implicit_and_columns(tmp_path):
    path = tmp_path / "clicks.tsv"
    rows = [f"{u}\t{(u * 3 + k) % 15}\tx" for u in range(20) for k in range(5)]
    path.write_text("who\twhat\tnote\n" + "\n".join(rows) + "\n")
    out = tmp_path / "ds"
    assert main(["prepare", str(path), "--out", str(out), "--n-heldout", "2", "--implicit",
                 "--user-col", "who", "--item-col", "what", "--quiet"]) == 0
    ds = SplitDataset.load(out)
    assert ds.meta["params"]["min_rating"] is None
    assert sum(getattr(ds, n).nnz for n in ("train", "validation_fold_in", "validation_heldout",
                                            "test_fold_in", "test_heldout")) <= 100
    assert np.all(np.diff(ds.train.indptr) >= 5)


@pytest.mark.parametrize("argv, msg", [
    (["prepare", "{tmp}/missing.csv", "--out", "{tmp}/o", "--n-heldout", "1"],
     "evcf prepare: error: input '.*missing.csv' does not exist"),
    (["prepare", "{raw}", "--out", "{tmp}/o", "--n-heldout", "9999"],
     "evcf prepare: error: n_heldout=9999 asks for 19,998 validation \\+ test users"),
    (["prepare", "{raw}", "--out", "{tmp}/o"], "evcf prepare: error: n_heldout is required"),
    (["prepare", "{raw}", "--out", "{tmp}", "--n-heldout", "1"],
     "evcf prepare: error: output directory .* already exists; pass overwrite"),
    (["info", "{tmp}"], "evcf info: error: .* is not an evcf dataset: meta.json is missing"),
    (["export", "{tmp}/nowhere", "--out", "{tmp}/x"], "evcf export: error: dataset directory"),
    (["synth", "--out", "{raw}"], "evcf synth: error: output .* already exists"),
])
def test_errors_exit_2_with_a_message(tmp_path, raw, capsys, argv, msg):
    argv = [a.format(tmp=tmp_path, raw=raw) for a in argv]
    assert main(argv) == 2
    assert re.search(msg, capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


def test_implicit_and_min_rating_are_exclusive(raw, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["prepare", str(raw), "--out", str(tmp_path / "o"), "--n-heldout", "1",
              "--implicit", "--min-rating", "3"])
    assert exc.value.code == 2


def test_registering_imports_nothing_heavy():
    """`evcf --help` stays instant: the data commands import Polars/Numba only when run."""
    code = ("import argparse, sys; import evcf_fast.cli.data as c; "
            "c.register(argparse.ArgumentParser().add_subparsers()); "
            "print(sorted(m for m in ('polars', 'numba', 'scipy', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_command_line_process_keeps_its_output_and_exit_code(raw, tmp_path):
    """The data commands end their process without the interpreter's teardown: what they print
    still arrives through a pipe, and the exit code is kept."""
    out = tmp_path / "ds"
    ok = subprocess.run([sys.executable, "-m", "evcf_fast", "prepare", str(raw), "--out",
                         str(out), "--n-heldout", "300"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert f"wrote {out}: users train 3,400" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "evcf_fast", "prepare", str(tmp_path / "no.csv"),
                          "--out", str(tmp_path / "x"), "--n-heldout", "3"],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "evcf prepare: error: input" in bad.stderr and "does not exist" in bad.stderr


def test_command_table_names_every_command_with_its_module():
    """main() registers only the module of the command it runs: COMMANDS must be complete."""
    import argparse
    import importlib

    cli_main = importlib.import_module("evcf_fast.cli.main")
    found = {}
    for name in cli_main.COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"evcf_fast.cli.{name}").register(sub)
        found.update({command: name for command in sub.choices})
    assert found == cli_main.COMMANDS


def test_prepare_command_line_imports_no_other_command():
    """`evcf prepare` parses its command line without NumPy, the metrics or the training code."""
    code = ("import sys; from evcf_fast.cli.main import build_parser; "
            "build_parser('prepare').parse_args(['prepare', 'x.csv', '--out', 'o']); "
            "print(sorted(m for m in ('numpy', 'polars', 'evcf_fast.metrics', "
            "'evcf_fast.cli.train') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_subcommands_are_registered():
    from evcf_fast.cli import data as cli

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli.register(sub)
    assert {"prepare", "synth", "info", "export"} <= set(sub.choices)


def test_synth_preset_choices_match_the_library():
    """The CLI lists the presets by name (the table imports Polars); they must not drift."""
    from evcf_fast.cli import data as cli
    from evcf_fast.data.synthetic import PRESETS

    assert set(cli._PRESETS) == set(PRESETS)
