"""Training steps on the CPU run with denormal floats flushed to zero (TrainConfig.flush_denormal),
and the process is left with the flag off."""

from __future__ import annotations

import pytest
import torch
from _train_data import clustered_split, one_torch_thread  # noqa: F401 (autouse)

from evcf_fast.models import ModelConfig
from evcf_fast.train import TrainConfig, fit
from evcf_fast.train.loop import flushed_denormals

TINY = 1e-39  # a float32 denormal (the smallest normal float32 is 1.18e-38)

pytestmark = pytest.mark.skipif(not torch.set_flush_denormal(False),
                                reason="this CPU has no flush-to-zero mode (not x86 SSE3)")


def _survives() -> bool:
    """Whether a denormal float32 survives arithmetic (flush-to-zero off)."""
    return bool((torch.tensor([TINY], dtype=torch.float32) * 1.0).item() != 0.0)


def test_the_block_flushes_and_the_flag_is_off_after():
    assert _survives()
    with flushed_denormals(True):
        assert not _survives()
    assert _survives()


def test_an_exception_in_the_block_leaves_the_flag_off():
    with pytest.raises(RuntimeError, match="boom"), flushed_denormals(True):
        raise RuntimeError("boom")
    assert _survives()


def test_disabled_changes_nothing():
    with flushed_denormals(False):
        assert _survives()


def test_flush_denormal_must_be_a_bool():
    with pytest.raises(TypeError, match="flush_denormal"):
        TrainConfig(flush_denormal="yes")


def test_fit_flushes_only_its_steps(tmp_path, monkeypatch):
    """Each epoch's steps run flushed; validation and the caller's code do not."""
    data = clustered_split(n_items=150, n_train=200, n_heldout=40)
    seen = []
    import evcf_fast.train.loop as loop

    real_validate = loop.Trainer.validate

    def validate(self):
        seen.append(("validate", _survives()))
        return real_validate(self)

    real_loss = None

    def spy_loss(model, *args, **kwargs):
        seen.append(("step", _survives()))
        return real_loss(model, *args, **kwargs)

    monkeypatch.setattr(loop.Trainer, "validate", validate)
    mc = ModelConfig(model="vamp", n_items=150, hidden_size=16, latent_size=8,
                     n_components=10)
    from evcf_fast.models import build_model

    real_loss = type(build_model(mc)).loss
    monkeypatch.setattr(type(build_model(mc)), "loss", spy_loss)
    for flush in (True, False):
        seen.clear()
        tc = TrainConfig(epochs=2, batch_size=100, device="cpu", warmup=0, max_beta=0.2,
                         eval_batch_size=40, flush_denormal=flush)
        fit(data, model_config=mc, train_config=tc, out=tmp_path / f"r{flush}", progress=False)
        steps = [s for kind, s in seen if kind == "step"]
        assert len(steps) == 4 and all(s is (not flush) for s in steps)
        assert all(s for kind, s in seen if kind == "validate")
        assert _survives()
