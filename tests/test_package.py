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


# The public surface as it stood before the architecture step (issue 8); names may be added,
# never removed or moved without a deprecation.
PUBLIC_NAMES = {
    "evcf_fast": ["EvaluationResult", "HVamp1VAE", "HVampVAE", "ModelConfig", "MultDAE",
                  "MultVAE", "SplitDataset", "TrainConfig", "VampVAE", "build_model", "evaluate",
                  "fit", "make_synthetic", "prepare", "read_interactions",
                  "strong_generalization_split"],
    "evcf_fast.metrics": ["EvaluationResult", "METRICS", "MetricSpec", "evaluate",
                          "evaluate_topk", "numba_threads", "parse_metrics", "topk", "warmup",
                          "DeviceCSR", "RECALL_DENOMINATORS", "NAN_POLICIES", "BACKENDS",
                          "TIE_RULE"],
    "evcf_fast.data": ["SplitConfig"],
    "evcf_fast.models": ["BaseModel", "HVamp1VAE", "HVampVAE", "MODELS", "ModelConfig",
                         "MultDAE", "MultVAE", "SparseRows", "VampPriorModel", "VampVAE",
                         "build_model"],
    "evcf_fast.train": ["AdamNormGrad", "FitResult", "PRESETS", "TrainConfig", "Trainer", "fit",
                        "load_model"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC_NAMES))
def test_public_names_stay_importable(module):
    import importlib

    mod = importlib.import_module(module)
    listed = set(getattr(mod, "__all__", ()))
    for name in PUBLIC_NAMES[module]:
        assert getattr(mod, name) is not None, f"{module}.{name}"
    missing = {n for n in PUBLIC_NAMES[module] if n not in listed} - {
        "DeviceCSR", "RECALL_DENOMINATORS", "NAN_POLICIES", "BACKENDS", "TIE_RULE"}
    assert not missing, f"{module}.__all__ lacks {sorted(missing)}"
