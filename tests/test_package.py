"""Package surface: lazy public names, a cheap import, the CLI front door."""

import subprocess
import sys

import pytest

import evcf_fast
from evcf_fast.cli import main


@pytest.mark.parametrize("name", sorted(set(evcf_fast.__all__) - {"__version__"}))
def test_every_public_name_resolves(name):
    assert getattr(evcf_fast, name) is not None


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        evcf_fast.nope  # noqa: B018


def test_import_does_not_pull_in_torch_numba_or_polars():
    code = ("import sys, evcf_fast, evcf_fast.cli; "
            "print(sorted(m for m in ('torch', 'numba', 'polars') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_kernels_are_a_subpackage():
    import evcf_fast.kernels.ranking as ranking

    assert ranking.__name__ == "evcf_fast.kernels.ranking"


def test_cli_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("prepare", "synth", "info", "export", "evaluate", "train", "recommend",
                    "plot", "bench"):
        assert command in out


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    code = main(["info", str(tmp_path / "missing")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("evcf info: error:") and "Traceback" not in err
