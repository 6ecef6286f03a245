"""The Fine-tune page's one planning call: what a job would be, before it is created."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import JobConfig, JobError, check_config, defaults, estimate_seconds, resolve_crop, split
from .schedule import list_jobs, queue_wait
from .store import making


@dataclass
class Plan:
    """A job as `create_job` would make it from these settings and images."""

    config: JobConfig                   # resolved: crop, holdout, quality range (as far as they resolve)
    problems: list[str]                 # why it cannot start (empty: it can)
    seconds: float                      # the estimate of `estimate_seconds` for the images used
    queue_wait: float                   # seconds until a slot is free (0: at once)
    train: list[str] = field(default_factory=list)      # the images' stems in the job folder
    holdout: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)  # image name -> why it is not used


def plan(config: JobConfig, images: dict[str, np.ndarray], all_jobs=None) -> Plan:
    """The resolved configuration, the problems, the estimated seconds and the queue wait.

    The same rules as `create_job` (config.resolve), so what the page promises is what a
    job does. `all_jobs` (default: `list_jobs()`) gives the queue and the names in the making.
    """
    all_jobs = list_jobs() if all_jobs is None else all_jobs
    problems = []
    try:
        config = resolve_crop(config)
    except JobError as e:
        problems.append(str(e))
    parts = split(config, {n: np.asarray(p).shape[:2] for n, p in images.items()})
    n_used = len(parts.train) + len(parts.holdout)
    try:
        check_config(config, n_used, making(all_jobs), n_given=len(images))
    except JobError as e:
        problems.append(str(e))
    config = defaults(config, n_used)
    sizes = {parts.stems[n]: np.asarray(p).shape[:2] for n, p in images.items()}
    held = parts.holdout or list(sizes)
    megapixels = float(np.mean([h * w / 1e6 for h, w in (sizes[n] for n in held)])) if held else 0.0
    seconds = estimate_seconds(config, n_used, megapixels) if config.quality_max is not None else 0.0
    return Plan(config=config, problems=problems, seconds=seconds, queue_wait=queue_wait(all_jobs),
                train=parts.train, holdout=parts.holdout, left_out=parts.left_out)
