"""AdamNormGrad against a float64 NumPy re-implementation of PAPER_SPEC 3.2 over several steps."""

import math

import numpy as np
import pytest
import torch

from evcf_fast.train.optim import AdamNormGrad, make_optimizer


def reference_adamnormgrad(theta0, grads, *, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0):
    """float64 PAPER_SPEC 3.2: normalise per tensor, Adam moments, eps on uncorrected sqrt(v)."""
    theta = [t.astype(np.float64).copy() for t in theta0]
    m = [np.zeros_like(t) for t in theta]
    v = [np.zeros_like(t) for t in theta]
    for t, step_grads in enumerate(grads, start=1):
        for i, g in enumerate(step_grads):
            g = g.astype(np.float64)
            g = g / (np.sqrt(np.sum(g * g)) + 1e-7)
            g = g + wd * theta[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            step_size = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            theta[i] = theta[i] - step_size * m[i] / (np.sqrt(v[i]) + eps)
    return theta


def _random_problem(seed, n_steps=7):
    rng = np.random.default_rng(seed)
    shapes = [(13, 7), (7,), (3, 4, 5), (1,)]
    theta0 = [rng.normal(size=s) for s in shapes]
    # gradients of very different scales: the normalisation must make them irrelevant
    grads = [[rng.normal(size=s) * 10.0 ** rng.integers(-6, 4) for s in shapes]
             for _ in range(n_steps)]
    return theta0, grads


def _run_ours(theta0, grads, *, dtype, foreach, **kw):
    params = [torch.nn.Parameter(torch.tensor(t, dtype=dtype)) for t in theta0]
    opt = AdamNormGrad(params, foreach=foreach, **kw)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g, dtype=dtype)
        opt.step()
    return [p.detach().double().numpy() for p in params]


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_matches_float64_reference(foreach, seed, wd):
    theta0, grads = _random_problem(seed)
    expected = reference_adamnormgrad(theta0, grads, lr=5e-4, wd=wd)
    got64 = _run_ours(theta0, grads, dtype=torch.float64, foreach=foreach, lr=5e-4,
                      weight_decay=wd)
    got32 = _run_ours(theta0, grads, dtype=torch.float32, foreach=foreach, lr=5e-4,
                      weight_decay=wd)
    for t0, e, g64, g32 in zip(theta0, expected, got64, got32):
        np.testing.assert_allclose(g64, e, rtol=1e-13, atol=1e-15)
        # float32 parameters: error relative to the values and to the distance travelled
        moved = np.abs(e - t0).max()
        np.testing.assert_allclose(g32, e, rtol=0, atol=1e-6 * max(1.0, np.abs(e).max())
                                   + 1e-5 * moved)


def test_first_step_by_hand():
    """Step 1, one scalar: theta - lr sqrt(1e-3) g~ / (sqrt(1e-3)|g~| + 1e-8), g~ = g/(|g|+1e-7)."""
    g = 3.0
    gt = g / (abs(g) + 1e-7)
    expected = 2.0 - 1e-3 * math.sqrt(1e-3) / 0.1 * (0.1 * gt) / (math.sqrt(1e-3 * gt * gt) + 1e-8)
    p = torch.nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    p.grad = torch.tensor([g], dtype=torch.float64)
    AdamNormGrad([p], lr=1e-3).step()
    assert p.item() == pytest.approx(expected, rel=1e-15)
    # Adam's first step is ~lr whatever the gradient scale
    assert 2.0 - p.item() == pytest.approx(1e-3, rel=1e-6)


def test_eps_on_uncorrected_sqrt_v_differs_from_torch_adam():
    """With a tiny normalised gradient the eps placement matters: torch's Adam disagrees."""
    theta0 = [np.array([1.0, -1.0])]
    grads = [[np.array([1e-9, 1.0])]] * 3
    expected = reference_adamnormgrad(theta0, grads, lr=1e-2)
    ours = _run_ours(theta0, grads, dtype=torch.float64, foreach=True, lr=1e-2)
    np.testing.assert_allclose(ours[0], expected[0], rtol=1e-14)
    p = torch.nn.Parameter(torch.tensor(theta0[0]))
    adam = torch.optim.Adam([p], lr=1e-2, eps=1e-8)
    for step_grads in grads:
        g = torch.tensor(step_grads[0])
        p.grad = g / (g.norm() + 1e-7)
        adam.step()
    assert not np.allclose(p.detach().numpy(), expected[0], rtol=1e-9, atol=0)


def test_grad_is_not_modified_and_none_grads_are_skipped():
    a = torch.nn.Parameter(torch.ones(3))
    b = torch.nn.Parameter(torch.ones(2))
    a.grad = torch.tensor([1.0, 2.0, 3.0])
    before = a.grad.clone()
    AdamNormGrad([a, b]).step()
    assert torch.equal(a.grad, before)
    assert torch.equal(b.detach(), torch.ones(2)) and not b.grad
    assert not torch.equal(a.detach(), torch.ones(3))


def test_state_dict_round_trip_continues_identically():
    theta0, grads = _random_problem(5, n_steps=6)
    expected = _run_ours(theta0, grads, dtype=torch.float32, foreach=True, lr=1e-3)
    params = [torch.nn.Parameter(torch.tensor(t, dtype=torch.float32)) for t in theta0]
    opt = AdamNormGrad(params, lr=1e-3)
    for step_grads in grads[:3]:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
    saved_params = [p.detach().clone() for p in params]
    saved_state = opt.state_dict()
    params2 = [torch.nn.Parameter(t) for t in saved_params]
    opt2 = AdamNormGrad(params2, lr=1e-3)
    opt2.load_state_dict(saved_state)
    for step_grads in grads[3:]:
        for p, g in zip(params2, step_grads):
            p.grad = torch.tensor(g, dtype=torch.float32)
        opt2.step()
    for e, p in zip(expected, params2):
        np.testing.assert_array_equal(p.detach().double().numpy(), e)


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": 0.0}, "lr must be > 0"),
    ({"betas": (1.0, 0.9)}, "betas must be in"),
    ({"eps": -1.0}, "must be >= 0"),
])
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdamNormGrad([torch.nn.Parameter(torch.ones(1))], **kwargs)


def test_sparse_gradient_rejected():
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3).to_sparse()
    with pytest.raises(TypeError, match="sparse gradients"):
        AdamNormGrad([p]).step()


def test_make_optimizer():
    p = [torch.nn.Parameter(torch.ones(2))]
    assert isinstance(make_optimizer("adamnormgrad", p, lr=1e-3), AdamNormGrad)
    adam = make_optimizer("adam", p, lr=1e-3, weight_decay=0.1)
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["weight_decay"] == 0.1
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_optimizer("sgd", p, lr=1e-3)


@pytest.mark.parametrize("foreach", [True, False])
def test_norm_chunks_equal_separate_tensors(foreach):
    """A fused (in, 2H) GLU weight with norm_chunks=2 updates like the authors' W and V apart."""
    rng = np.random.default_rng(11)
    w0, v0 = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    b0, c0 = rng.normal(size=4), rng.normal(size=4)
    steps = [(rng.normal(size=(6, 4)), rng.normal(size=(6, 4)) * 1e3,
              rng.normal(size=4) * 1e-3, rng.normal(size=4)) for _ in range(5)]
    expected = reference_adamnormgrad([w0, v0, b0, c0], [list(s) for s in steps], lr=1e-3)
    weight = torch.nn.Parameter(torch.tensor(np.concatenate([w0, v0], axis=1)))
    bias = torch.nn.Parameter(torch.tensor(np.concatenate([b0, c0])))
    opt = AdamNormGrad([weight, bias], lr=1e-3, norm_chunks=2, foreach=foreach)
    for gw, gv, gb, gc in steps:
        weight.grad = torch.tensor(np.concatenate([gw, gv], axis=1))
        bias.grad = torch.tensor(np.concatenate([gb, gc]))
        opt.step()
    w, b = weight.detach().numpy(), bias.detach().numpy()
    for got, e in zip([w[:, :4], w[:, 4:], b[:4], b[4:]], expected):
        np.testing.assert_allclose(got, e, rtol=1e-13, atol=1e-15)


def test_norm_chunks_must_divide_last_dim():
    with pytest.raises(ValueError, match="does not divide"):
        AdamNormGrad([torch.nn.Parameter(torch.ones(3, 5))], norm_chunks=2)
    with pytest.raises(ValueError, match="norm_chunks must be an int"):
        AdamNormGrad([torch.nn.Parameter(torch.ones(4))], norm_chunks=0)


def test_make_optimizer_groups_fused_parameters_of_a_model():
    """The model's tensor_splits() decide the groups: GLU and head weights get norm_chunks=2."""
    from evcf_fast.models import ModelConfig, build_model

    model = build_model(ModelConfig(model="multvae", n_items=30, hidden_size=8, latent_size=4,
                                    gated=True))
    opt = make_optimizer("adamnormgrad", model, lr=1e-3)
    splits = model.tensor_splits()
    assert splits and all(c == 2 for c in splits.values())
    by_id = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            assert group["norm_chunks"] == splits.get(by_id[id(p)], 1)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
