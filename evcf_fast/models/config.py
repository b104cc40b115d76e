"""Model configuration shared by every model of Kim & Suh (RecSys 2019) and Liang et al. (WWW 2018).

One frozen, keyword-only dataclass describes every architecture of the family; the authors' quirks
(PAPER_SPEC section 2) are explicit fields so that a preset can reproduce them or switch them off.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._checks import check_bool, check_float, check_int, must_be
from .._config import ConfigMixin

MODEL_NAMES = ("multvae", "multdae", "vamp", "hvamp", "hvamp1", "popularity", "itemknn", "ease")
LIKELIHOODS = ("multinomial", "bernoulli")
FIT_DTYPES = ("float32", "float64")
# Baselines fitted in closed form (no gradient steps): evcf_fast.train.zoo fits them.
CLOSED_FORM = ("popularity", "itemknn", "ease")
KL_ESTIMATORS = ("mc", "analytic")
INITS = ("he", "xavier")

# Models whose prior is the VampPrior; the authors' code trains them with a Bernoulli likelihood
# by default (PAPER_SPEC 2.2) while Mult-VAE/Mult-DAE are multinomial.
VAMP_FAMILY = ("vamp", "hvamp", "hvamp1")


def _check_known(name: str, value, choices: tuple[str, ...]) -> None:
    # "unknown model 'vae'; expected one of [...]": ModelConfig's published wording, kept rather
    # than _checks.check_choice's "model must be one of [...], got 'vae'"
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {list(choices)}")


@dataclass(frozen=True, kw_only=True)
class ModelConfig(ConfigMixin):
    """Architecture and objective of one model.

    Parameters
    ----------
    model : {"multvae", "multdae", "vamp", "hvamp", "hvamp1", "popularity", "itemknn", "ease"}
        Mult-VAE (authors' baseline / Liang et al.), Mult-DAE (Liang et al.), Vamp (one stochastic
        layer with a VampPrior), H+Vamp (z1/z2 hierarchy, ``num_layers >= 1``; the authors use 2)
        and the one-hidden-layer H+Vamp variant; the closed-form baselines popularity, ItemKNN
        and EASE (Steck, WWW 2019), which only read the fields below and ``n_items``.
    n_items : int
        Number of items D (input and output width).
    hidden_size : int
        Width H of every hidden layer.
    latent_size : int
        Size of z (z1 for the hierarchical models); the code width of Mult-DAE.
    latent2_size : int
        Size of z2 (hvamp, hvamp1 only).
    num_layers : int
        Number of hidden layers L of each encoder/decoder stack.
    gated : bool
        GLU hidden layers ``(Wx+b) * sigmoid(Vx+c)`` (no tanh, as in the authors' code) instead of
        tanh layers.
    likelihood : {"multinomial", "bernoulli"} or None
        None picks the authors' default: multinomial for multvae/multdae, Bernoulli for the Vamp
        family.
    dropout : float
        Input dropout rate, in [0, 1); applied after the L2 row normalisation.
    n_components : int
        Number K of VampPrior pseudo-inputs.
    pseudoinputs_mean, pseudoinputs_std : float
        Normal initialisation of the pseudo-input matrix (authors: 0.05 and 0.01).
    kl : {"mc", "analytic"}
        "mc": one-sample Monte-Carlo estimate log q(z|x) - log p(z) (authors); "analytic": the
        closed-form Gaussian KL to N(0, I) (Liang et al.; multvae only).
    logvar_clip : tuple of two floats or None
        Hardtanh bounds of every log-variance head (authors: (-12, 4)); None leaves them
        unconstrained (Liang et al.).
    init : {"he", "xavier"}
        "he": He-normal weights N(0, sqrt(2/fan_in)) and PyTorch default uniform biases (authors);
        "xavier": Glorot-uniform weights and N(0, 0.001) truncated-normal biases (Liang et al.).
    normalize_pseudoinputs : bool
        L2-normalise the pseudo-inputs like real rows (the authors do not).
    pseudoinput_dropout : bool
        Apply the encoder's input dropout to the pseudo-inputs in training (the authors do).
    dae_l2 : float
        Mult-DAE weight penalty: ``dae_l2 * sum ||W||_F^2`` over weight matrices (not biases) is
        added to the loss (Liang et al.: 0.01 / batch_size). multdae only.
    ease_lambda : float
        EASE's L2 weight lambda, > 0 (Steck: 500 on ML-20M; tune it on the validation users).
    neighbours : int
        ItemKNN: similar items kept per item (top-k of each row of the similarity matrix).
    shrink : float
        ItemKNN: cosine shrinkage, sim(i, j) = c_ij / (sqrt(n_i n_j) + shrink), >= 0.
    fit_dtype : {"float64", "float32"}
        Precision of EASE's closed-form solve (its weights are stored and applied in float32).
    """

    model: str
    n_items: int
    hidden_size: int = 600
    latent_size: int = 200
    latent2_size: int = 200
    num_layers: int = 1
    gated: bool = False
    likelihood: str | None = None
    dropout: float = 0.5
    n_components: int = 1000
    pseudoinputs_mean: float = 0.05
    pseudoinputs_std: float = 0.01
    kl: str = "mc"
    logvar_clip: tuple[float, float] | None = (-12.0, 4.0)
    init: str = "he"
    normalize_pseudoinputs: bool = False
    pseudoinput_dropout: bool = True
    dae_l2: float = 0.0
    ease_lambda: float = 500.0
    neighbours: int = 100
    shrink: float = 10.0
    fit_dtype: str = "float64"

    def __post_init__(self):
        _check_known("model", self.model, MODEL_NAMES)
        for name in ("n_items", "hidden_size", "latent_size", "latent2_size", "num_layers",
                     "n_components", "neighbours"):
            self._set(name, check_int(getattr(self, name), name, minimum=1))
        for name in ("gated", "normalize_pseudoinputs", "pseudoinput_dropout"):
            check_bool(getattr(self, name), name)
        if self.likelihood is None:
            default = "bernoulli" if self.model in VAMP_FAMILY else "multinomial"
            self._set("likelihood", default)
        _check_known("likelihood", self.likelihood, LIKELIHOODS)
        _check_known("kl", self.kl, KL_ESTIMATORS)
        _check_known("init", self.init, INITS)
        self._set("dropout", check_float(self.dropout, "dropout"))
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(must_be("dropout", "in [0, 1)", self.dropout))
        for name in ("pseudoinputs_mean", "pseudoinputs_std", "dae_l2", "ease_lambda", "shrink"):
            self._set(name, check_float(getattr(self, name), name))
        _check_known("fit_dtype", self.fit_dtype, FIT_DTYPES)
        if not self.ease_lambda > 0:
            raise ValueError(must_be("ease_lambda", "> 0", self.ease_lambda))
        for name in ("pseudoinputs_std", "dae_l2", "shrink"):
            if getattr(self, name) < 0:
                raise ValueError(must_be(name, ">= 0", getattr(self, name)))
        if self.dae_l2 != 0 and self.model != "multdae":
            raise ValueError(f"dae_l2 is the Mult-DAE weight penalty; expected 0 for "
                             f"model={self.model!r}, got {self.dae_l2}")
        if self.model == "hvamp1" and self.num_layers != 1:
            raise ValueError(f"model='hvamp1' has exactly one hidden layer, expected "
                             f"num_layers=1, got {self.num_layers}; use model='hvamp' for more")
        if self.kl == "analytic" and self.model != "multvae":
            raise ValueError(f"kl='analytic' (closed-form KL to N(0, I)) needs model='multvae', "
                             f"got model={self.model!r}; the VampPrior models use kl='mc'")
        if self.logvar_clip is not None:
            clip = self.logvar_clip
            if not isinstance(clip, (tuple, list)) or len(clip) != 2:
                raise TypeError(must_be("logvar_clip", "a (low, high) pair or None", repr(clip)))
            low, high = (check_float(v, "logvar_clip") for v in clip)
            if not low < high:
                raise ValueError(f"logvar_clip must have low < high, got ({low}, {high})")
            self._set("logvar_clip", (low, high))


    @property
    def is_vamp(self) -> bool:
        """Whether the model has a VampPrior (and hence pseudo-inputs)."""
        return self.model in VAMP_FAMILY

    @property
    def is_closed_form(self) -> bool:
        """Whether the model is a baseline fitted in closed form (no optimiser, no epochs)."""
        return self.model in CLOSED_FORM
