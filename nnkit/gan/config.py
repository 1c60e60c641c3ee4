"""The GAN config: one dataclass, saved as JSON with every GAN run so that the networks can be rebuilt."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from nnkit.errors import NnkitError


@dataclass
class GanConfig:
    """Everything that defines a GAN training run (defaults: Radford et al. 2016 unless noted)."""

    data: str = "mnist"  # dataset name (see `nnkit datasets`) or folder:PATH
    data_opts: dict = field(default_factory=dict)  # dataset options, e.g. {"n_train": 500}
    data_root: str | None = None  # root for downloaded datasets (default $NNKIT_DATA or ~/.nnkit/data)
    conditional: bool = False  # embed the class label into both networks (Mirza & Osindero 2014)
    latent_dim: int = 100  # size of z, drawn from N(0, I)
    g_width: int = 64  # generator's last hidden stage width; earlier stages double it (paper: 128 at 64²)
    # discriminator's first stage width, later stages double it; narrower than G: on small sets a wide D
    # only overfits sooner, and it halves the CPU time of a step
    d_width: int = 32
    embed_dim: int = 10  # label embedding size in the conditional generator
    lr: float = 2e-4  # Adam learning rate for both networks
    beta1: float = 0.5  # Adam beta1 (the paper lowers it from 0.9 to 0.5 for stability)
    beta2: float = 0.999  # Adam beta2
    ema_decay: float = 0.999  # the saved/sampled generator is this moving average of the trained one (0: off)
    batch_size: int = 32  # paper: 128; smaller batches give more updates per CPU second at equal quality
    epochs: int = 20  # passes over the training split
    time_limit: float | None = None  # stop after this many seconds of training (final epoch is then partial)
    max_steps: int | None = None  # stop after this many steps (one D and one G update each; tests, demos)
    n_samples: int = 64  # size of the fixed noise batch drawn into the per-epoch grid
    n_eval: int = 256  # generated images scored per epoch by the judge classifier (~ the cost of 8 steps)
    eval_every: int = 1  # score every this many epochs (the last epoch is always scored)
    confidence: float = 0.9  # a sample counts as confidently labelled at this judge probability
    judge: str | None = None  # classifier run (id, name or prefix) that scores samples; None: train one
    judge_model: str = "cnn"  # model of an automatically trained judge
    # its options: the classic LeNet flatten head gives more confident labels on real digits than global pooling
    judge_opts: dict = field(default_factory=lambda: {"pool": "flatten"})
    # epochs of an automatically trained judge: on 1,000 MNIST images 10 epochs give the same accuracy as 30 but
    # a judge that is confident (>= 0.9) on only 85% of real test digits instead of 92%
    judge_epochs: int = 30
    seed: int | None = None  # None: a random seed is picked and recorded
    device: str | None = None  # cpu | cuda | mps | None (auto, or $NNKIT_DEVICE)
    name: str | None = None  # a name to refer to the run by

    def validate(self) -> GanConfig:
        """Raise a one-line NnkitError for a bad value; return self."""
        if not self.lr > 0 or not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise NnkitError(f"need lr > 0 and betas in [0, 1), got lr={self.lr}, betas=({self.beta1}, {self.beta2})")
        for key in ("latent_dim", "g_width", "d_width", "embed_dim", "batch_size", "epochs", "n_samples",
                    "eval_every"):
            if getattr(self, key) < 1:
                raise NnkitError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.n_eval < 2:
            raise NnkitError(f"n_eval must be at least 2 (a covariance needs two samples), got {self.n_eval}")
        if self.max_steps is not None and self.max_steps < 1:
            raise NnkitError(f"max_steps must be at least 1, got {self.max_steps}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise NnkitError(f"time_limit must be positive seconds, got {self.time_limit}")
        if not 0 <= self.ema_decay < 1:
            raise NnkitError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0 < self.confidence < 1:
            raise NnkitError(f"confidence must be in (0, 1), got {self.confidence}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GanConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
