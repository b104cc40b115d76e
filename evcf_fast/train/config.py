"""Training configuration (PAPER_SPEC section 3).

The defaults are the authors' command-line defaults [EVCF experiment.py]: AdamNormGrad, lr 5e-4,
batch 200, at most 400 epochs, per-epoch beta warm-up over 100 epochs to ``max_beta`` = 1.0, early
stopping with patience 50 on validation NDCG@100, seed 14. Liang et al.'s Mult-VAE recipe is the
``multvae-liang`` preset (see :mod:`evcf_fast.train.presets`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .._checks import check_bool, check_choice, check_float, check_int, must_be, type_name
from .._config import ConfigMixin, dataclass_from_dict, to_plain  # noqa: F401 (re-exported)

OPTIMIZERS = ("adam", "adamnormgrad")
BETA_SCHEDULES = ("epoch", "step")
DEVICES = ("auto", "cpu", "cuda")
INPUTS = ("sparse", "dense")
DIST_TIMEOUT_S = 300.0   # distributed runs: rendezvous and collective timeout, in seconds

TEST_METRICS = ("ndcg@100", "ndcg@20", "ndcg@10", "recall@50", "recall@20", "recall@10", "recall@5",
                "recall@1")


@dataclass(frozen=True, kw_only=True)
class TrainConfig(ConfigMixin):
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
    flush_denormal: bool = True        # CPU: denormal floats are 0 in training steps (Vamp
                                       # priors make them; 1.7-2.4x faster steps); off after
    input: str = "sparse"              # model input: "sparse" CSR batches | "dense" rows
    eval_batch_size: int = 2000        # users per scoring block in validation and test
    val_metric: str = "ndcg@100"       # model-selection metric (authors: NDCG@100)
    test_metrics: tuple[str, ...] = TEST_METRICS   # reported once for the best checkpoint
    checkpoint_every: int = 1          # epochs between resumable checkpoints (and the last one)
    max_steps: int | None = None       # stop after this many optimizer steps (a smoke/bench cap;
                                       # the epoch in progress ends there and is validated)

    def __post_init__(self):
        self._set("epochs", check_int(self.epochs, "epochs", minimum=1))
        self._set("batch_size", check_int(self.batch_size, "batch_size", minimum=1))
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        self._set("lr", check_float(self.lr, "lr", positive=True))
        self._set("weight_decay", check_float(self.weight_decay, "weight_decay", minimum=0))
        check_choice(self.beta_schedule, "beta_schedule", BETA_SCHEDULES)
        self._set("max_beta", check_float(self.max_beta, "max_beta", minimum=0))
        self._set("warmup", check_int(self.warmup, "warmup", minimum=0))
        self._set("anneal_cap", check_float(self.anneal_cap, "anneal_cap", minimum=0))
        self._set("total_anneal_steps",
                  check_int(self.total_anneal_steps, "total_anneal_steps", minimum=0))
        self._set("patience", check_int(self.patience, "patience", minimum=0, allow_none=True))
        self._set("seed", check_int(self.seed, "seed", minimum=0))
        check_choice(self.device, "device", DEVICES)
        for name in ("bf16", "tf32", "fused", "flush_denormal"):
            check_bool(getattr(self, name), name)
        check_choice(self.input, "input", INPUTS)
        self._set("eval_batch_size", check_int(self.eval_batch_size, "eval_batch_size", minimum=1))
        if not isinstance(self.val_metric, str):
            raise TypeError(must_be("val_metric", "a str", type_name(self.val_metric)))
        if isinstance(self.test_metrics, str) or not all(isinstance(m, str)
                                                         for m in self.test_metrics):
            raise TypeError(must_be("test_metrics", "a tuple of metric strings",
                                    repr(self.test_metrics)))
        if not self.test_metrics:
            raise ValueError("test_metrics must name at least one metric, got ()")
        self._set("test_metrics", tuple(self.test_metrics))
        self._set("checkpoint_every",
                  check_int(self.checkpoint_every, "checkpoint_every", minimum=1))
        self._set("max_steps", check_int(self.max_steps, "max_steps", minimum=1, allow_none=True))



config_from_dict = dataclass_from_dict  # the former name of the shared helper, kept importable
