"""ModelConfig validation and build_model (issue 4): every error path, the likelihood defaults."""

from __future__ import annotations

import dataclasses

import pytest

from evcf_fast.models import (
    MODELS,
    HVamp1VAE,
    HVampVAE,
    ModelConfig,
    MultDAE,
    MultVAE,
    VampVAE,
    build_model,
)


def test_likelihood_defaults_follow_the_authors():
    for model in ("multvae", "multdae"):
        assert ModelConfig(model=model, n_items=10).likelihood == "multinomial"
    for model in ("vamp", "hvamp", "hvamp1"):
        assert ModelConfig(model=model, n_items=10).likelihood == "bernoulli"
    cfg = ModelConfig(model="hvamp", n_items=10, likelihood="multinomial")
    assert cfg.likelihood == "multinomial"


def test_config_is_frozen_keyword_only_and_round_trips_through_asdict():
    cfg = ModelConfig(model="vamp", n_items=10, logvar_clip=[-6, 2])
    assert cfg.logvar_clip == (-6.0, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_items = 3
    with pytest.raises(TypeError):
        ModelConfig("vamp", 10)
    again = ModelConfig(**dataclasses.asdict(cfg))
    assert again == cfg
    assert cfg.is_vamp and not ModelConfig(model="multvae", n_items=3).is_vamp


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(model="vae"), ValueError, r"unknown model 'vae'; expected one of \['multvae'"),
    (dict(n_items=0), ValueError, "n_items must be >= 1, got 0"),
    (dict(n_items=3.0), TypeError, "n_items must be an int, got float"),
    (dict(n_items=True), TypeError, "n_items must be an int, got bool"),
    (dict(hidden_size=0), ValueError, "hidden_size must be >= 1"),
    (dict(latent_size=-1), ValueError, "latent_size must be >= 1"),
    (dict(latent2_size=0), ValueError, "latent2_size must be >= 1"),
    (dict(num_layers=0), ValueError, "num_layers must be >= 1"),
    (dict(n_components=0), ValueError, "n_components must be >= 1"),
    (dict(gated=1), TypeError, r"gated must be a bool \(true or false\), got 1 \(int\)"),
    (dict(normalize_pseudoinputs="no"), TypeError, "normalize_pseudoinputs must be a bool"),
    (dict(pseudoinput_dropout=None), TypeError, "pseudoinput_dropout must be a bool"),
    (dict(likelihood="gaussian"), ValueError, "unknown likelihood 'gaussian'"),
    (dict(kl="exact"), ValueError, "unknown kl 'exact'"),
    (dict(init="orthogonal"), ValueError, "unknown init 'orthogonal'"),
    (dict(dropout=1.0), ValueError, r"dropout must be in \[0, 1\), got 1.0"),
    (dict(dropout=-0.1), ValueError, r"dropout must be in \[0, 1\)"),
    (dict(dropout="0.5"), TypeError, "dropout must be a float, got str"),
    (dict(dropout=float("nan")), ValueError, "dropout must be finite"),
    (dict(pseudoinputs_std=-0.01), ValueError, "pseudoinputs_std must be >= 0"),
    (dict(pseudoinputs_mean=float("inf")), ValueError, "pseudoinputs_mean must be finite"),
    (dict(dae_l2=-1.0), ValueError, "dae_l2 must be >= 0"),
    (dict(dae_l2=0.1), ValueError, "dae_l2 is the Mult-DAE weight penalty; expected 0 for "
                                   "model='vamp'"),
    (dict(kl="analytic"), ValueError, "kl='analytic' .* needs model='multvae', got "
                                      "model='vamp'"),
    (dict(logvar_clip=(4.0, -12.0)), ValueError, "logvar_clip must have low < high"),
    (dict(logvar_clip=-12.0), TypeError, "logvar_clip must be a \\(low, high\\) pair or None"),
    (dict(logvar_clip=(-1.0, 2.0, 3.0)), TypeError, "logvar_clip must be a \\(low, high\\) pair"),
    (dict(logvar_clip=("a", 2.0)), TypeError, "logvar_clip must be a float, got str"),
    (dict(model="hvamp1", num_layers=2), ValueError, "model='hvamp1' has exactly one hidden "
                                                     "layer, expected num_layers=1, got 2"),
])
def test_config_rejects(kwargs, exc, match):
    base = dict(model="vamp", n_items=10)
    base.update(kwargs)
    with pytest.raises(exc, match=match):
        ModelConfig(**base)


def test_multdae_and_multvae_accept_their_own_options():
    assert ModelConfig(model="multdae", n_items=5, dae_l2=0.01 / 500).dae_l2 == 0.01 / 500
    cfg = ModelConfig(model="multvae", n_items=5, kl="analytic", logvar_clip=None, init="xavier")
    assert cfg.logvar_clip is None


@pytest.mark.parametrize("name, cls", [("multvae", MultVAE), ("multdae", MultDAE),
                                       ("vamp", VampVAE), ("hvamp", HVampVAE),
                                       ("hvamp1", HVamp1VAE)])
def test_build_model_picks_the_class(name, cls):
    cfg = ModelConfig(model=name, n_items=12, hidden_size=4, latent_size=3, latent2_size=2,
                      n_components=3)
    model = build_model(cfg)
    assert type(model) is cls and model.cfg is cfg and MODELS[name] is cls


def test_build_model_rejects_non_config():
    with pytest.raises(TypeError, match="cfg must be a ModelConfig, got dict"):
        build_model({"model": "vamp", "n_items": 3})
    with pytest.raises(TypeError, match="cfg must be a ModelConfig, got dict"):
        MultVAE({"model": "vamp", "n_items": 3})


def test_model_class_rejects_another_models_config():
    with pytest.raises(ValueError, match="MultVAE needs cfg.model='multvae', got 'hvamp'"):
        MultVAE(ModelConfig(model="hvamp", n_items=3))
