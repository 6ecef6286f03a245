"""A job's configuration and the server's limits: what may run, how it is resolved, how long it takes.

Everything here is pure (no job folder, no process): `check_config` resolves and validates a
configuration, `split` says which images train, which are held out and which are left out,
`estimate_seconds` says how long a job takes. The job-folder store and the page's planning
call (`plan`) build on these, so the rules exist once.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
import math
import os
from pathlib import Path
import re

import numpy as np

from .. import weights

STATES = ("created", "queued", "running", "finished", "failed", "cancelled")
ACTIVE = ("queued", "running")
STOPPED = ("failed", "cancelled")

# Defaults of the limits; the environment variables named in the functions below override them.
MAX_CONCURRENT = 1   # one job at a time: training uses every core, two would each run at half speed
MAX_STEPS = 2000     # about an hour of the default model on 2 shared cores (see STEPS_PER_SECOND)
MAX_IMAGES = 50      # all images are held in the worker's memory

# Training speed of the default model (mean-scale hyperprior, N=128, M=192) at crop 128 and
# batch 8: forward + backward + Adam step of train.rd_loss in bfloat16 autocast, 2 torch threads.
# Measured on this project's 2-core machine while two other training processes shared both
# cores: 5 timings of 10-15 steps (after 3 warm-up steps) on scikit-image photos gave 0.38,
# 0.44, 0.52, 0.67 and 0.91 steps/s; the median is rounded down to 0.5. On idle cores a job
# runs faster, so estimates err on the long side.
STEPS_PER_SECOND = 0.5
# Encode + decode of one megapixel by the default model, same conditions (a 768x512 image at
# 4 qualities took 7.5 to 10.7 s, 1.9 to 2.7 s per encode + decode of 0.39 megapixels).
EVAL_SECONDS_PER_MEGAPIXEL = 6.0
STARTUP_SECONDS = 10.0  # worker start: Python, torch, the images and the base weights

EVAL_POINTS = 4             # learned qualities of the before/after comparison, evenly spread
VAL_LEVELS = 3              # train.validate measures 3 levels per validation
VAL_CROP = 256              # ... on a 256x256 centre crop of each hold-out image
CROP_RANGE = (64, 512)


class JobError(ValueError):
    """A job that cannot be created, started or resumed; the message says what to change."""


@dataclass
class JobConfig:
    out: str                            # name of the new weights (saved among the user weights)
    base: str = weights.DEFAULT_MODEL   # weights to start from (shipped or user)
    steps: int = 200                    # the target: 200 steps on 10 images in under 10 minutes
    lr: float = 1e-4                    # a third of the from-scratch rate: adapt, do not forget
    crop: int = 128                     # training crop (multiple of 64); smaller images are left out
    batch_size: int = 8                 # crops per step
    holdout: int | None = None          # held-out images; None = a fifth of them, at least 1
    quality_min: int = 1                # quality levels drawn while training
    quality_max: int | None = None      # None = the base model's top level
    seed: int = 0                       # hold-out split, crops and noise
    checkpoint_seconds: float = 30.0    # a killed job loses at most this much work
    val_every: int = 0                  # steps between hold-out validations; 0 = ten per run
    threads: int = 0                    # torch threads of the worker; 0 = one per core
    description: str = ""               # what the images are, for the model card
    overwrite: bool = False             # replace existing user weights named `out`

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "JobConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# ---------------------------------------------------------------------------------------- limits

def jobs_dir() -> Path:
    """Folder of all job folders; AECORE_JOBS_DIR overrides ~/.cache/aecore/jobs."""
    return Path(os.environ.get("AECORE_JOBS_DIR", Path.home() / ".cache" / "aecore" / "jobs"))


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


def max_concurrent() -> int:
    """Jobs that may run at once (AECORE_MAX_JOBS, default MAX_CONCURRENT)."""
    return _env_int("AECORE_MAX_JOBS", MAX_CONCURRENT)


def max_steps() -> int:
    """Most training steps of one job (AECORE_MAX_STEPS, default MAX_STEPS)."""
    return _env_int("AECORE_MAX_STEPS", MAX_STEPS)


def max_images() -> int:
    """Most images of one job (AECORE_MAX_IMAGES, default MAX_IMAGES)."""
    return _env_int("AECORE_MAX_IMAGES", MAX_IMAGES)


# ------------------------------------------------------------------------------------- estimates

def eval_qualities(config: JobConfig) -> list[float]:
    """EVAL_POINTS learned qualities spread evenly over the job's (resolved) quality range, ends included."""
    lo, hi = config.quality_min, config.quality_max or config.quality_min
    return sorted({float(lo + (hi - lo) * i // (EVAL_POINTS - 1)) for i in range(EVAL_POINTS)})


def eval_seconds(config: JobConfig, n_holdout: int, megapixels: float) -> float:
    return 2 * len(eval_qualities(config)) * n_holdout * megapixels * EVAL_SECONDS_PER_MEGAPIXEL


def estimate_seconds(config: JobConfig, n_images: int, megapixels: float = 0.4) -> float:
    """Seconds a job takes on this kind of machine, for the default model: a clear estimate.

    Training: steps at STEPS_PER_SECOND, scaled by the pixels per batch (batch x crop^2
    against 8 x 128^2); validation: VAL_LEVELS forward passes of a 256x256 crop per hold-out
    image every tenth of the run (a forward pass costs about a third of a training step);
    evaluation: encode + decode of every hold-out image (of `megapixels` each) at every
    evaluation quality, base and new; plus the worker's start. Smaller bases train faster.
    """
    holdout = holdout_count(config, n_images)
    pixels = config.batch_size * config.crop ** 2 / (8 * 128 ** 2)
    train_s = config.steps * pixels / STEPS_PER_SECOND
    val_runs = config.steps // config.val_every + 1 if config.val_every else min(config.steps, 10)
    val_s = val_runs * holdout * VAL_LEVELS * VAL_CROP ** 2 / (8 * 128 ** 2) / 3 / STEPS_PER_SECOND
    return round(STARTUP_SECONDS + train_s + val_s + eval_seconds(config, holdout, megapixels), 1)


def holdout_count(config: JobConfig, n_images: int) -> int:
    """The configured hold-out, or a fifth of the images (at least 1, leaving at least 1 to train on)."""
    if config.holdout is None:
        return max(1, min(n_images - 1, round(n_images / 5)))
    return config.holdout


# ------------------------------------------------------------------------------------ resolving

def resolve(config: JobConfig, sizes: dict[str, tuple[int, int]], making=()) -> tuple[JobConfig, Split]:
    """The config with crop, holdout and quality range resolved, and the split of the images.

    `sizes` is {name: (height, width)} of every image given; `making` names the weights that
    queued or running jobs are making. JobError says what is wrong (the first problem).
    """
    config = resolve_crop(config)
    parts = split(config, sizes)
    return check_config(config, len(parts.train) + len(parts.holdout), making, n_given=len(sizes)), parts


def check_config(config: JobConfig, n_images: int, making=(), n_given: int | None = None) -> JobConfig:
    """The config with holdout and quality range resolved; JobError says what is wrong.

    `n_images` counts the images the job trains and holds out (those large enough for the
    crop), `n_given` all images given (default: the same).
    """
    try:
        weights.check_new_name(config.out, base=config.base, overwrite=config.overwrite, making=making)
    except weights.WeightsError as e:
        raise JobError(f"output name: {e}") from None
    try:
        levels = weights.meta_model(config.base).levels
    except weights.WeightsError as e:
        raise JobError(f"base: {e}") from None
    if not 1 <= config.steps <= max_steps():
        raise JobError(f"steps must be between 1 and {max_steps()} (got {config.steps}); "
                       "the limit is AECORE_MAX_STEPS")
    n_given = n_images if n_given is None else n_given
    if n_given > max_images():
        raise JobError(f"{n_given} images are more than the limit of {max_images()}; "
                       "pick fewer images (the limit is AECORE_MAX_IMAGES)")
    if n_images < 2:
        raise JobError(f"a fine-tune needs at least 2 images of at least {config.crop}x{config.crop} px "
                       f"(1 to train on, 1 to hold out), got {n_images}")
    holdout = holdout_count(config, n_images)
    if not 1 <= holdout <= n_images - 1:
        raise JobError(f"holdout must be between 1 and {n_images - 1} for {n_images} images (got {holdout})")
    if not (0 < config.lr <= 0.01 and math.isfinite(config.lr)):
        raise JobError(f"learning rate must be in (0, 0.01] (got {config.lr:g}); 1e-4 suits fine-tuning")
    if not 1 <= config.batch_size <= 64:
        raise JobError(f"batch size must be between 1 and 64 (got {config.batch_size})")
    q_max = defaults(config, n_images).quality_max
    if not 1 <= config.quality_min <= q_max <= levels:
        raise JobError(f"quality range must satisfy 1 <= min <= max <= {levels} "
                       f"(got {config.quality_min}..{q_max})")
    if config.checkpoint_seconds < 0 or config.val_every < 0:
        raise JobError("checkpoint_seconds and val_every must not be negative")
    return defaults(config, n_images)


def defaults(config: JobConfig, n_images: int) -> JobConfig:
    """The config with the hold-out count and the top quality filled in (nothing checked).

    The top quality is the base model's top level; None while the base cannot be read.
    """
    q_max = config.quality_max
    if q_max is None:
        try:
            q_max = weights.meta_model(config.base).levels
        except weights.WeightsError:
            q_max = None
    return replace(config, holdout=holdout_count(config, n_images), quality_max=q_max)


def resolve_crop(config: JobConfig) -> JobConfig:
    """The crop rounded down to a multiple of the base model's stride; JobError when out of range."""
    lo, hi = CROP_RANGE
    if not lo <= config.crop <= hi:
        raise JobError(f"crop must be between {lo} and {hi} pixels (got {config.crop})")
    try:
        stride = weights.meta_model(config.base).stride
    except weights.WeightsError:
        return config  # check_config says what is wrong with the base
    return replace(config, crop=max(lo, config.crop // stride * stride))


@dataclass
class Split:
    """Which images a job trains on, which it holds out, and which it leaves out (with why)."""

    stems: dict[str, str]               # image name as given -> file stem in the job folder
    train: list[str]                    # stems
    holdout: list[str]                  # stems
    left_out: dict[str, str]            # image name as given -> the reason


def split(config: JobConfig, sizes: dict[str, tuple[int, int]]) -> Split:
    """The job's images by role; `sizes` is {name: (height, width)}, `config` has its crop resolved.

    Images smaller than the crop on either side are left out (training takes random crops of
    that size; padding a tiny image up to it would teach the model borders). The hold-out is a
    seeded shuffle of the sorted stems of the rest, so the same images and seed always hold
    out the same ones.
    """
    stems: dict[str, str] = {}
    for name in sizes:
        stems[name] = _file_stem(name, set(stems.values()))
    left_out = {name: f"{w}x{h} px is smaller than the {config.crop} px training crop"
                for name, (h, w) in sizes.items() if min(h, w) < config.crop}
    usable = sorted(stems[n] for n in sizes if n not in left_out)
    count = min(holdout_count(config, len(usable)), max(0, len(usable) - 1))
    order = np.random.default_rng(config.seed).permutation(len(usable))
    holdout = sorted(usable[i] for i in order[:count])
    return Split(stems=stems, train=[n for n in usable if n not in holdout], holdout=holdout, left_out=left_out)


def _file_stem(name: str, taken) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(str(name)).stem).strip("_")[:60] or "image"
    candidate, i = stem, 2
    while candidate in taken:
        candidate, i = f"{stem}_{i}", i + 1
    return candidate
