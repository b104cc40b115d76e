"""Training configuration (PAPER_SPEC section 3).

The defaults are the authors' command-line defaults [EVCF experiment.py]: AdamNormGrad, lr 5e-4,
batch 200, at most 400 epochs, per-epoch beta warm-up over 100 epochs to ``max_beta`` = 1.0, early
stopping with patience 50 on validation NDCG@100, seed 14. Liang et al.'s Mult-VAE recipe is the
``multvae-liang`` preset (see :mod:`evcf_fast.train.presets`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

OPTIMIZERS = ("adam", "adamnormgrad")
BETA_SCHEDULES = ("epoch", "step")
DEVICES = ("auto", "cpu", "cuda")
INPUTS = ("sparse", "dense")

TEST_METRICS = ("ndcg@100", "ndcg@20", "ndcg@10", "recall@50", "recall@20", "recall@10", "recall@5",
                "recall@1")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How a model is trained; one concern per dataclass (the model lives in ``ModelConfig``).

    Every field is a plain int/float/str/bool/tuple so that ``dataclasses.asdict`` is JSON-able
    and a checkpoint can be loaded with ``torch.load(weights_only=True)``.
    """

    epochs: int = 400                  # maximum number of epochs
    batch_size: int = 200              # training users per step (the last batch is partial)
    optimizer: str = "adamnormgrad"    # "adamnormgrad" (authors, PAPER_SPEC 3.2) | "adam"
    lr: float = 5e-4                   # learning rate
    weight_decay: float = 0.0          # L2 added to the (normalised) gradient, as in AdamNormGrad
    beta_schedule: str = "epoch"       # "epoch": max_beta*min(1, t/warmup) | "step": Liang
    max_beta: float = 1.0              # KL weight reached after `warmup` epochs ("epoch" schedule)
    warmup: int = 100                  # epochs; beta warm-up AND patience held at 0 before it
    anneal_cap: float = 0.2            # "step" schedule: beta = min(anneal_cap, step/total)
    total_anneal_steps: int = 200_000  # "step" schedule: steps to reach anneal_cap
    patience: int | None = 50          # stop when the non-improving count exceeds it; None: never
    seed: int = 14                     # torch (CPU and CUDA), numpy, python and batch shuffling
    device: str = "auto"               # "auto" (cuda when available) | "cpu" | "cuda"
    bf16: bool = False                 # bf16 autocast of forward and loss (CUDA only)
    tf32: bool = False                 # TF32 matmuls (CUDA only), restored after training
    fused: bool = True                 # fused Adam kernel (CUDA and CPU)
    input: str = "sparse"              # model input: "sparse" CSR batches | "dense" rows
    eval_batch_size: int = 2000        # users per scoring block in validation and test
    val_metric: str = "ndcg@100"       # model-selection metric (authors: NDCG@100)
    test_metrics: tuple[str, ...] = TEST_METRICS   # reported once for the best checkpoint
    checkpoint_every: int = 1          # epochs between resumable checkpoints (and the last one)

    def __post_init__(self):
        _check_int("epochs", self.epochs, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_float("lr", self.lr, positive=True)
        _check_float("weight_decay", self.weight_decay)
        _check_choice("beta_schedule", self.beta_schedule, BETA_SCHEDULES)
        _check_float("max_beta", self.max_beta)
        _check_int("warmup", self.warmup, 0)
        _check_float("anneal_cap", self.anneal_cap)
        _check_int("total_anneal_steps", self.total_anneal_steps, 0)
        if self.patience is not None:
            _check_int("patience", self.patience, 0)
        _check_int("seed", self.seed, 0)
        _check_choice("device", self.device, DEVICES)
        for name in ("bf16", "tf32", "fused"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {type(getattr(self, name)).__name__}")
        _check_choice("input", self.input, INPUTS)
        _check_int("eval_batch_size", self.eval_batch_size, 1)
        if not isinstance(self.val_metric, str):
            raise TypeError(f"val_metric must be a str, got {type(self.val_metric).__name__}")
        if isinstance(self.test_metrics, str) or not all(isinstance(m, str)
                                                         for m in self.test_metrics):
            raise TypeError(f"test_metrics must be a tuple of metric strings, "
                            f"got {self.test_metrics!r}")
        if not self.test_metrics:
            raise ValueError("test_metrics must name at least one metric, got ()")
        object.__setattr__(self, "test_metrics", tuple(self.test_metrics))
        _check_int("checkpoint_every", self.checkpoint_every, 1)

    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples become lists)."""
        return to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        return config_from_dict(cls, d)


def to_plain(value):
    """Tuples to lists, recursively, so configs are JSON-able and weights_only-loadable."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def config_from_dict(cls, d: dict):
    """Build a frozen config dataclass from a plain dict (lists back to tuples).

    Raises
    ------
    ValueError
        If ``d`` has keys that are not fields of ``cls``.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; "
                         f"expected some of {sorted(names)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _check_int(name, value, lo):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")


def _check_float(name, value, *, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value}")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
