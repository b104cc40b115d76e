"""``evcf diagnose`` (issue 12): KL per latent layer, active units, pseudo-input statistics and
the seen/unseen reconstruction gap, each against a float64 NumPy computation from definitions."""

import json
import re

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from _train_data import (
    SMALL_TRAIN_FLAGS,
    clustered_split,
    one_torch_thread,  # noqa: F401 (autouse)
    saved_clustered_split,
)
from scipy.special import logsumexp

from evcf_fast.cli import main
from evcf_fast.models import build_model
from evcf_fast.models.config import ModelConfig
from evcf_fast.train.diagnose import ACTIVE_UNIT_THRESHOLD, diagnose, gaussian_kl

N_ITEMS = 50


def _model(**kw):
    torch.manual_seed(0)
    cfg = ModelConfig(n_items=N_ITEMS, hidden_size=12, latent_size=4, latent2_size=3,
                      n_components=6, **kw)
    return build_model(cfg).eval()


@pytest.fixture(scope="module")
def data():
    return clustered_split(n_items=N_ITEMS)


def _dense(m):
    return torch.from_numpy(m.toarray().astype(np.float32))


def test_gaussian_kl_matches_the_formula():
    rng = np.random.default_rng(0)
    mu, lv, pmu, plv = (rng.standard_normal((5, 3)) for _ in range(4))
    # KL between diagonal Gaussians, written from the densities: E_q[log q - log p]
    ref = 0.5 * (plv - lv + (np.exp(lv) + (mu - pmu) ** 2) / np.exp(plv) - 1)
    got = gaussian_kl(*(torch.from_numpy(a) for a in (mu, lv, pmu, plv))).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    std = gaussian_kl(torch.from_numpy(mu), torch.from_numpy(lv)).numpy()
    np.testing.assert_allclose(std, 0.5 * (np.exp(lv) + mu ** 2 - 1 - lv), rtol=1e-12)
    assert np.all(gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)).numpy() == 0.0)


def test_multvae_kl_active_units_and_reconstruction(data):
    model = _model(model="multvae", likelihood="multinomial")
    out = diagnose(model, train=data.train, heldout_fold_in=data.validation_fold_in,
                   max_users=100, batch_size=32)
    x = _dense(data.train[:100])
    with torch.no_grad():
        mu, lv = (t.double().numpy() for t in model.encode(x, training=False))
        logits = model.decoder_out(model.decoder(torch.from_numpy(mu).float())).double().numpy()
    kl = 0.5 * (np.exp(lv) + mu ** 2 - 1 - lv)
    layer = out["layers"]["z"]
    assert layer["size"] == 4
    assert layer["kl"] == pytest.approx(kl.sum(1).mean(), rel=1e-5)
    np.testing.assert_allclose(layer["kl_per_unit"], kl.mean(0), rtol=1e-5)
    assert layer["active_units"] == int((mu.var(0) > ACTIVE_UNIT_THRESHOLD).sum())
    np.testing.assert_allclose(layer["mean_variance"], mu.var(0), rtol=1e-5)
    log_softmax = logits - logsumexp(logits, axis=1, keepdims=True)
    xn = x.double().numpy()
    nll = -(log_softmax * xn).sum() / xn.sum()
    assert out["nll_per_interaction"]["seen"] == pytest.approx(nll, rel=1e-5)
    assert out["parameters"] == sum(p.numel() for p in model.parameters())
    assert "pseudoinputs" not in out


def test_vamp_kl_is_the_monte_carlo_estimate_from_definitions(data):
    model = _model(model="vamp")
    n, s = 40, 3
    out = diagnose(model, train=data.train, heldout_fold_in=data.validation_fold_in,
                   max_users=n, n_samples=s, batch_size=n, seed=7)
    x = _dense(data.train[:n])
    with torch.no_grad():
        mu, lv = (t.double().numpy() for t in model._encode_top(
            model._rows(torch.nn.functional.normalize(x, dim=1)), training=False))
        pmu, plv = (t.double().numpy() for t in model.prior_components(training=False))
    gen = torch.Generator().manual_seed(7)
    kls = []
    for _ in range(s):
        z = mu + np.exp(0.5 * lv) * torch.randn(mu.shape, generator=gen).double().numpy()
        log_q = -0.5 * (np.log(2 * np.pi) + lv + (z - mu) ** 2 / np.exp(lv)).sum(1)
        comp = -0.5 * (np.log(2 * np.pi) + plv[None] + (z[:, None] - pmu[None]) ** 2
                       / np.exp(plv[None])).sum(2)                         # (n, K)
        log_p = logsumexp(comp, axis=1) - np.log(len(pmu))
        kls.append(log_q - log_p)
    assert out["layers"]["z"]["kl"] == pytest.approx(np.mean(kls), rel=1e-4)


def test_pseudoinput_statistics_from_definitions(data):
    model = _model(model="vamp")
    with torch.no_grad():   # some entries below 0 and above 1, which hardtanh clips
        model.pseudoinputs.copy_(torch.linspace(-0.5, 1.5, 6 * N_ITEMS).reshape(6, N_ITEMS))
    out = diagnose(model, train=data.train, heldout_fold_in=data.validation_fold_in,
                   max_users=80)["pseudoinputs"]
    u = np.clip(np.linspace(-0.5, 1.5, 6 * N_ITEMS).reshape(6, N_ITEMS), 0, 1)
    x = data.train[:80].toarray().astype(np.float64)
    assert out["n_components"] == 6
    assert out["mass_mean"] == pytest.approx(u.sum(1).mean(), rel=1e-6)
    assert out["user_mass_mean"] == pytest.approx(x.sum(1).mean())
    assert out["fraction_zero"] == pytest.approx(np.mean(u == 0))
    assert out["fraction_one"] == pytest.approx(np.mean(u == 1))
    assert np.all(u[0] == 0)   # an all-zero pseudo-input: cosine 0 with every user
    norm_u = np.linalg.norm(u, axis=1)
    cos = (x @ u.T) / np.linalg.norm(x, axis=1)[:, None] / np.where(norm_u > 0, norm_u, 1)[None]
    assert out["nearest_user_cosine_median"] == pytest.approx(np.median(cos.max(0)), rel=1e-6)
    assert 1.0 <= out["effective_components"] <= 6.0
    assert 1 <= out["components_most_responsible"] <= 6


def test_hvamp_has_two_layers_and_z1_is_closed_form_against_p_z1_given_z2(data):
    model = _model(model="hvamp", num_layers=2, gated=True)
    out = diagnose(model, train=data.train, heldout_fold_in=data.validation_fold_in,
                   max_users=60)
    assert set(out["layers"]) == {"z1", "z2"}
    assert out["layers"]["z1"]["size"] == 4 and out["layers"]["z2"]["size"] == 3
    x = _dense(data.train[:60])
    with torch.no_grad():
        _, (_, q_mu, q_lv, _, _, _, p_mu, p_lv) = model._forward(model._rows(x), training=False)
    q_mu, q_lv, p_mu, p_lv = (t.double().numpy() for t in (q_mu, q_lv, p_mu, p_lv))
    kl = 0.5 * (p_lv - q_lv + (np.exp(q_lv) + (q_mu - p_mu) ** 2) / np.exp(p_lv) - 1)
    assert out["layers"]["z1"]["kl"] == pytest.approx(kl.sum(1).mean(), rel=1e-5)
    assert out["pseudoinputs"]["n_components"] == 6
    assert out["nll_per_interaction"]["unseen_over_seen"] == pytest.approx(
        out["nll_per_interaction"]["unseen"] / out["nll_per_interaction"]["seen"])


def test_cli_prints_findings_and_writes_json(tmp_path):
    data_dir = saved_clustered_split(tmp_path / "split")
    run = tmp_path / "hv"
    assert main(["train", "--data", str(data_dir), "--model", "vamp", "--epochs", "2",
                 "--out", str(run), "--set", "n_components=5", *SMALL_TRAIN_FLAGS]) == 0
    out = tmp_path / "d.json"
    assert main(["diagnose", str(run), "--users", "50", "--json", str(out)]) == 0
    result = json.loads(out.read_text())[str(run)]
    assert result["model"] == "vamp" and result["layers"]["z"]["size"] == 4
    assert result["pseudoinputs"]["n_components"] == 5


def test_cli_refuses_a_model_without_latents(tmp_path, capsys):
    data_dir = saved_clustered_split(tmp_path / "split")
    run = tmp_path / "pop"
    assert main(["train", "--data", str(data_dir), "--model", "popularity", "--out", str(run),
                 "--quiet"]) == 0
    assert main(["diagnose", str(run)]) != 0
    assert "no latent layers" in capsys.readouterr().err


def test_a_tiny_sparse_input_gives_the_same_numbers_as_dense(data):
    # the diagnosis densifies CSR blocks; a block boundary must not change anything
    model = _model(model="multvae")
    a = diagnose(model, train=data.train, heldout_fold_in=data.validation_fold_in,
                 max_users=50, batch_size=50)
    b = diagnose(model, train=sp.csr_matrix(data.train), heldout_fold_in=data.validation_fold_in,
                 max_users=50, batch_size=7)
    assert a["layers"]["z"]["kl"] == pytest.approx(b["layers"]["z"]["kl"], rel=1e-6)
    assert a["nll_per_interaction"] == pytest.approx(b["nll_per_interaction"], rel=1e-6)


@pytest.mark.parametrize("flag", ["--users", "--samples"])
def test_cli_rejects_a_count_below_one(tmp_path, capsys, flag):
    assert main(["diagnose", str(tmp_path), flag, "0"]) == 2
    assert re.search(rf"{flag} must be .*>= 1.*got 0", capsys.readouterr().err)
