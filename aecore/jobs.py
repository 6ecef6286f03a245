"""Fine-tuning jobs: each one runs in its own process and keeps everything in its own folder.

    job = jobs.create_job(jobs.JobConfig(base="hyperprior", out="my-photos"), images)
    jobs.start(job)                 # running in a background process, or queued for a free slot
    job.reload().progress()         # step, total, fraction, steps/s, seconds left, log records
    jobs.cancel(job); jobs.resume(job)
    jobs.list_jobs()                # newest first; also starts queued jobs when slots are free

    python -m aecore.jobs run JOB_DIR   # the worker that start() spawns (also resumes in the foreground)

Why processes: a fine-tune runs for minutes, longer than a page run or a browser tab lives.
`start` spawns a worker in a new session (`start_new_session=True`), so closing the app does
not stop it, and `cancel` sends SIGTERM to that session's process group; `train.train`
checkpoints on SIGTERM, and `resume` continues exactly from that checkpoint. The app only
reads the job folder; nothing about a job lives in the app's memory.

A job folder, `jobs_dir()/<id>/`:

    config.json       the JobConfig (holdout, crop and quality range resolved) and the image split
    images/train/     training images (PNG)
    images/holdout/   held-out images (PNG): validation curves and the final before/after comparison
    status.json       state, phase, pid, timestamps, error (written by the worker and by cancel)
    log.jsonl         training log of `train.train`: step, loss, bpp, psnr, lr, seconds, it_per_s, val
    checkpoint.pt     exact resume point (model, optimizer, step, RNG)
    worker.log        the worker's standard output and error
    result.json       hold-out rate-distortion of the base and the new weights, BD-rate

The new weights go to `weights.user_dir()/OUT.safetensors` + `OUT.json` (the model card gains
a `fine_tune` entry: base, data, steps and the hold-out results), so they appear in the model picker.

States: created -> queued -> running -> finished | failed | cancelled; failed and cancelled
jobs resume from their checkpoint. At most `max_concurrent()` jobs run at once; the worker
that ends starts the next queued job, and `refresh()`/`list_jobs()` do too, so a crashed
worker never blocks the queue. A worker holds an exclusive lock on `worker.lock` while it
lives (the operating system drops it when the process dies, even on SIGKILL), which is how a
'running' job whose process is gone is told apart from a live one. POSIX only (process
groups, flock).
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field, fields
import fcntl
import json
import math
import os
from pathlib import Path
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import traceback

import numpy as np

from . import io, weights

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

# Learned qualities of the before/after comparison (those inside the job's quality range).
EVAL_QUALITIES = (1, 3, 5, 8)
VAL_LEVELS = 3              # train.validate measures 3 levels per validation
VAL_CROP = 256              # ... on a 256x256 centre crop of each hold-out image

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_SPAWN_GRACE_SECONDS = 120.0  # a spawned worker has this long to take its lock


class JobError(ValueError):
    """A job that cannot be created, started or resumed; the message says what to change."""


@dataclass
class JobConfig:
    base: str                           # weights to start from (shipped or user)
    out: str                            # name of the new weights (saved among the user weights)
    steps: int = 200                    # DESIGN.md target: 200 steps on 10 images in under 10 minutes
    lr: float = 1e-4                    # a third of the from-scratch rate: adapt, do not forget
    crop: int = 128                     # training crop; smaller when the images are (multiple of 64)
    batch_size: int = 8
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


# ------------------------------------------------------------------------------------------ jobs

@dataclass
class Job:
    """A job folder as last read; `reload()` reads it again."""

    id: str
    dir: Path
    config: JobConfig
    train_images: list[str] = field(default_factory=list)
    holdout_images: list[str] = field(default_factory=list)
    status: dict = field(default_factory=dict)

    @property
    def state(self) -> str:
        return self.status.get("state", "failed")

    @property
    def error(self) -> str | None:
        return self.status.get("error")

    @property
    def resumable(self) -> bool:
        return self.state in STOPPED

    def reload(self) -> "Job":
        """Reads status.json again, marking a 'running' job whose worker is gone as failed."""
        self.status = _check_worker(self.dir)
        return self

    def log(self) -> list[dict]:
        return read_log(self.dir / "log.jsonl")

    def result(self) -> dict | None:
        """result.json (see `evaluate`) once the job has finished, else None."""
        path = self.dir / "result.json"
        return json.loads(path.read_text()) if path.exists() else None

    def progress(self) -> dict:
        """Where training stands, for a progress bar and live curves.

        step/total/fraction, steps_per_s (recent training speed), seconds_left (training still
        to do at that speed plus the final evaluation; before the first log record, the
        estimate of `estimate_seconds`), elapsed (seconds since the job last started), and
        records: the parsed log (loss, bpp, psnr of training batches; `val` on the hold-out
        images every few steps).
        """
        records = self.log()
        total = self.config.steps
        step = records[-1]["step"] if records else 0
        speed = _recent_speed(records)
        st = self.status
        eval_s = _eval_seconds(self.config, len(self.holdout_images), st.get("holdout_megapixels", 0.4))
        if self.state == "finished":
            left = 0.0
        elif st.get("phase") == "evaluating":
            left = max(1.0, eval_s - (time.time() - st.get("phase_at", time.time())))
        elif speed:
            left = (total - step) / speed + eval_s
        else:
            left = estimate_seconds(self.config, len(self.train_images) + len(self.holdout_images),
                                    st.get("holdout_megapixels", 0.4))
            if self.state == "running" and st.get("spawned"):
                left = max(eval_s, left - (time.time() - st["spawned"]))
        started = st.get("spawned") or st.get("started")
        return {"state": self.state, "phase": st.get("phase"), "step": step, "total": total,
                "fraction": min(1.0, step / total) if total else 0.0,
                "steps_per_s": speed, "seconds_left": round(left, 1),
                "elapsed": round(time.time() - started, 1) if started and self.state == "running" else None,
                "queue_position": queue_position(self), "error": self.error, "records": records}


def read_log(path: Path) -> list[dict]:
    """The records of a training log; a resumed run's repeated steps replace the earlier ones.

    A run killed after its last checkpoint logged steps that the resumed run logs again;
    keeping only the latest record of each step gives one clean curve. A half-written last
    line (the worker is appending right now) is skipped.
    """
    records: list[dict] = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return records
    for line in lines:
        try:
            rec = json.loads(line)
            step = int(rec["step"])
        except (ValueError, KeyError, TypeError):
            continue
        while records and records[-1]["step"] >= step:
            records.pop()
        records.append(rec)
    return records


def _recent_speed(records: list[dict], window: int = 6) -> float | None:
    """Training steps per second over the last few log records (training time only)."""
    if not records:
        return None
    recent = records[-window:]
    if len(recent) >= 2:
        steps = recent[-1]["step"] - recent[0]["step"]
        seconds = recent[-1].get("seconds", 0) - recent[0].get("seconds", 0)
        if steps > 0 and seconds > 0:
            return round(steps / seconds, 3)
    return recent[-1].get("it_per_s") or None


def eval_qualities(config: JobConfig) -> list[float]:
    """EVAL_QUALITIES inside the job's quality range, with its two ends."""
    lo, hi = config.quality_min, config.quality_max or EVAL_QUALITIES[-1]
    return sorted({float(q) for q in EVAL_QUALITIES if lo <= q <= hi} | {float(lo), float(hi)})


def _eval_seconds(config: JobConfig, n_holdout: int, megapixels: float) -> float:
    return 2 * len(eval_qualities(config)) * n_holdout * megapixels * EVAL_SECONDS_PER_MEGAPIXEL


def estimate_seconds(config: JobConfig, n_images: int, megapixels: float = 0.4) -> float:
    """Seconds a job takes on this kind of machine, for the default model: a clear estimate.

    Training: steps at STEPS_PER_SECOND, scaled by the pixels per batch (batch x crop^2
    against 8 x 128^2); validation: VAL_LEVELS forward passes of a 256x256 crop per hold-out
    image every tenth of the run (a forward pass costs about a third of a training step);
    evaluation: encode + decode of every hold-out image (of `megapixels` each) at every
    evaluation quality, base and new; plus the worker's start. Smaller bases train faster.
    """
    holdout = _holdout_count(config, n_images)
    pixels = config.batch_size * config.crop ** 2 / (8 * 128 ** 2)
    train_s = config.steps * pixels / STEPS_PER_SECOND
    val_runs = config.steps // config.val_every + 1 if config.val_every else min(config.steps, 10)
    val_s = val_runs * holdout * VAL_LEVELS * VAL_CROP ** 2 / (8 * 128 ** 2) / 3 / STEPS_PER_SECOND
    return round(STARTUP_SECONDS + train_s + val_s + _eval_seconds(config, holdout, megapixels), 1)


def _holdout_count(config: JobConfig, n_images: int) -> int:
    if config.holdout is None:
        return max(1, min(n_images - 1, round(n_images / 5)))
    return config.holdout


# -------------------------------------------------------------------------------------- creating

def check_config(config: JobConfig, n_images: int) -> JobConfig:
    """The config with holdout and quality range resolved; JobError says what is wrong."""
    try:
        weights.check_name(config.out)
    except weights.WeightsError as e:
        raise JobError(f"output name: {e}") from None
    if config.out.lower() in weights.reserved_names():
        raise JobError(f"{config.out!r} is the name of shipped weights or of a codec; "
                       "choose another name for the new weights")
    if config.out == config.base:
        raise JobError(f"the new weights need a name other than the base {config.base!r}")
    if not config.overwrite and (weights.user_dir() / f"{config.out}.safetensors").exists():
        raise JobError(f"weights named {config.out!r} exist already; choose another name or allow overwriting")
    try:
        card = weights.read_card(config.base)
    except weights.WeightsError as e:
        raise JobError(f"base: {e}") from None
    levels = len(card.get("config", {}).get("lambdas", ())) or 8
    if not 1 <= config.steps <= max_steps():
        raise JobError(f"steps must be between 1 and {max_steps()} (got {config.steps}); "
                       "the limit is AECORE_MAX_STEPS")
    if n_images > max_images():
        raise JobError(f"{n_images} images are more than the limit of {max_images()}; "
                       "pick fewer images (the limit is AECORE_MAX_IMAGES)")
    if n_images < 2:
        raise JobError(f"a fine-tune needs at least 2 images (1 to train on, 1 to hold out), got {n_images}")
    holdout = _holdout_count(config, n_images)
    if not 1 <= holdout <= n_images - 1:
        raise JobError(f"holdout must be between 1 and {n_images - 1} for {n_images} images (got {holdout})")
    if not (0 < config.lr <= 0.01 and math.isfinite(config.lr)):
        raise JobError(f"learning rate must be in (0, 0.01] (got {config.lr:g}); 1e-4 suits fine-tuning")
    if not 1 <= config.batch_size <= 64:
        raise JobError(f"batch size must be between 1 and 64 (got {config.batch_size})")
    if not 64 <= config.crop <= 512:
        raise JobError(f"crop must be between 64 and 512 pixels (got {config.crop})")
    q_max = levels if config.quality_max is None else config.quality_max
    if not 1 <= config.quality_min <= q_max <= levels:
        raise JobError(f"quality range must satisfy 1 <= min <= max <= {levels} "
                       f"(got {config.quality_min}..{q_max})")
    if config.checkpoint_seconds < 0 or config.val_every < 0:
        raise JobError("checkpoint_seconds and val_every must not be negative")
    return JobConfig(**{**asdict(config), "holdout": holdout, "quality_max": q_max,
                        "crop": config.crop // 64 * 64})


def create_job(config: JobConfig, images: dict[str, np.ndarray]) -> Job:
    """A new job folder holding the config and the images, split into train and hold-out.

    The split is a seeded shuffle of the sorted names, so the same images and seed always
    hold out the same ones. The crop shrinks (to a multiple of 64, at least 64) when the
    smallest training image is smaller than it. The folder is built under a hidden name and
    renamed into place, so no reader ever sees half a job.
    """
    config = check_config(config, len(images))
    for other in _all_jobs(jobs_dir()):
        if other.state in ACTIVE and other.config.out == config.out:
            raise JobError(f"job {other.id} is already making weights named {config.out!r}; "
                           "choose another name or cancel that job")
    pixels = {}
    for name, img in images.items():
        try:
            pixels[_file_stem(name, pixels)] = io.to_rgb(np.asarray(img))
        except io.ImageError as e:
            raise JobError(f"image {name!r}: {e}") from None
    names = sorted(pixels)
    order = np.random.default_rng(config.seed).permutation(len(names))
    holdout = sorted(names[i] for i in order[:config.holdout])
    train = [n for n in names if n not in holdout]
    smallest = min(min(pixels[n].shape[:2]) for n in train)
    crop = max(64, min(config.crop, smallest // 64 * 64))
    config = JobConfig(**{**asdict(config), "crop": crop})

    root = jobs_dir()
    root.mkdir(parents=True, exist_ok=True)
    job_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{config.out}-{secrets.token_hex(2)}"
    tmp = root / f".{job_id}.tmp"
    try:
        for part, group in (("train", train), ("holdout", holdout)):
            (tmp / "images" / part).mkdir(parents=True)
            for n in group:
                io.save_png(pixels[n], tmp / "images" / part / f"{n}.png")
        megapixels = float(np.mean([pixels[n].shape[0] * pixels[n].shape[1] / 1e6 for n in holdout]))
        _write_json(tmp / "config.json", {"id": job_id, "config": config.to_dict(),
                                          "weights_dir": str(weights.user_dir()),
                                          "images": {"train": train, "holdout": holdout}})
        _write_json(tmp / "status.json", {"state": "created", "phase": None, "created": time.time(),
                                          "pid": None, "error": None, "runs": 0,
                                          "holdout_megapixels": round(megapixels, 4)})
        os.rename(tmp, root / job_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_job(job_id)


def _file_stem(name: str, taken) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(str(name)).stem).strip("_")[:60] or "image"
    candidate, i = stem, 2
    while candidate in taken:
        candidate, i = f"{stem}_{i}", i + 1
    return candidate


def load_job(job_id: str) -> Job:
    """The job called `job_id` (a folder name under jobs_dir())."""
    if not _ID.match(job_id or ""):
        raise JobError(f"invalid job id {job_id!r}")
    return _load(jobs_dir() / job_id)


def _load(job_dir: Path) -> Job:
    try:
        meta = json.loads((job_dir / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise JobError(f"no readable job at {job_dir.name!r} ({e})") from None
    job = Job(id=job_dir.name, dir=job_dir, config=JobConfig.from_dict(meta["config"]),
              train_images=meta["images"]["train"], holdout_images=meta["images"]["holdout"])
    return job.reload()


def _all_jobs(root: Path) -> list[Job]:
    jobs = []
    if root.is_dir():
        for d in root.iterdir():
            if d.is_dir() and not d.name.startswith(".") and (d / "config.json").exists():
                try:
                    jobs.append(_load(d))
                except (JobError, KeyError, TypeError):
                    continue  # a folder that is not a job: ignore, never crash the list
    return sorted(jobs, key=lambda j: j.status.get("created", 0), reverse=True)


def list_jobs() -> list[Job]:
    """All jobs, newest first, after `refresh()`."""
    refresh()
    return _all_jobs(jobs_dir())


def refresh() -> None:
    """Marks jobs whose worker died as failed and starts queued jobs while slots are free."""
    _schedule(jobs_dir())


def queue_position(job: Job) -> int | None:
    """1 for the next queued job to start, 2 for the one after, ...; None when not queued."""
    if job.state != "queued":
        return None
    queued = sorted((j for j in _all_jobs(job.dir.parent) if j.state == "queued"),
                    key=lambda j: (j.status.get("queued_at", 0), j.id))
    ids = [j.id for j in queued]
    return ids.index(job.id) + 1 if job.id in ids else None


def delete(job: Job) -> None:
    """Removes a job folder (not its weights); a running job must be cancelled first."""
    with _locked(job.dir.parent / ".schedule.lock"):
        job.reload()
        if job.state == "running":
            raise JobError(f"job {job.id} is running; cancel it first")
        shutil.rmtree(job.dir)


# ------------------------------------------------------------------------------- start and stop

def start(job: Job) -> Job:
    """Queues the job and starts it at once in a background process if a slot is free.

    Also resumes a failed or cancelled job (from its checkpoint); a queued or running job
    is left as it is.
    """
    job.reload()
    if job.state == "finished":
        raise JobError(f"job {job.id} has finished; its weights are {job.config.out!r}")
    if job.state in ACTIVE:
        return job
    _update_status(job.dir, state="queued", queued_at=time.time(), error=None, phase=None,
                   cancel_requested=None)
    _schedule(job.dir.parent)
    return job.reload()


def resume(job: Job) -> Job:
    """Starts a cancelled or failed job again; training continues exactly from its checkpoint."""
    job.reload()
    if job.state not in STOPPED and job.state not in ACTIVE:
        raise JobError(f"job {job.id} is {job.state}; only cancelled or failed jobs resume")
    return start(job)


def cancel(job: Job, wait: float = 15.0) -> Job:
    """Stops a job: a queued one at once, a running one by SIGTERM to its process group.

    The worker checkpoints and marks itself cancelled; this waits up to `wait` seconds for
    that (0 returns at once, and the status says `cancel_requested` meanwhile).
    """
    with _locked(job.dir.parent / ".schedule.lock"):
        job.reload()
        if job.state in ("created", "queued"):
            _update_status(job.dir, state="cancelled", phase=None, finished=time.time())
            return job.reload()
        if job.state != "running":
            return job
        st = _update_status(job.dir, cancel_requested=time.time())
        _signal(st, signal.SIGTERM)
    deadline = time.time() + wait
    while job.reload().state == "running" and time.time() < deadline:
        time.sleep(0.2)
    return job


def _signal(status: dict, sig: int) -> None:
    pid, pgid = status.get("pid"), status.get("pgid")
    if not pid:
        return
    try:
        if pgid == pid:  # the worker leads its own session: reach anything it started too
            os.killpg(pgid, sig)
        else:            # a foreground run inside someone's shell: only the worker itself
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


_children: dict[int, subprocess.Popen] = {}  # workers this process spawned, reaped by _pid_alive


def _schedule(root: Path) -> None:
    """Fails dead workers' jobs, then spawns queued jobs (oldest first) into free slots."""
    for pid, child in list(_children.items()):  # reap our finished workers (no zombies)
        if child.poll() is not None:
            _children.pop(pid, None)
    if not root.is_dir():
        return
    with _locked(root / ".schedule.lock"):
        jobs = _all_jobs(root)  # _load checks each running job's worker
        running = sum(j.state == "running" for j in jobs)
        queued = sorted((j for j in jobs if j.state == "queued"),
                        key=lambda j: (j.status.get("queued_at", 0), j.id))
        for job in queued[:max(0, max_concurrent() - running)]:
            _spawn(job)


def _spawn(job: Job) -> None:
    _update_status(job.dir, state="running", phase="starting", pid=None, pgid=None, attached=False,
                   spawned=time.time(), error=None)
    package_root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "AECORE_JOBS_DIR": str(job.dir.parent),
           "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    try:
        with open(job.dir / "worker.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "aecore.jobs", "run", str(job.dir)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True)
    except OSError as e:
        _update_status(job.dir, state="failed", phase=None, error=f"could not start the worker ({e})")
        return
    _children[proc.pid] = proc
    _update_status(job.dir, pid=proc.pid, pgid=proc.pid)


# ------------------------------------------------------------------------------ the worker side

class _Cancelled(Exception):
    pass


def _raise_cancelled(signum, frame):
    raise _Cancelled()


def run(job: Job, progress=None) -> Job:
    """Runs the job in this process: training, then the hold-out evaluation; returns the job.

    `progress(phase, done, total, info)` is called with phase "training" (info: the log
    record) and "evaluating" (info: {"label": ...}). This is the worker's body, and what
    `python -m aecore finetune` runs in the foreground. The end state (finished, cancelled
    or failed with its error) is in `job.status`; Ctrl-C and SIGTERM cancel after a checkpoint.
    """
    from .train import TrainConfig, train

    lock = _take_worker_lock(job.dir)
    if lock is None:
        raise JobError(f"job {job.id} is already running in another process")
    previous = signal.signal(signal.SIGTERM, _raise_cancelled)
    try:
        meta = json.loads((job.dir / "config.json").read_text())
        if str(weights.user_dir()) != meta["weights_dir"]:  # base and new weights live where they did
            os.environ["AECORE_USER_WEIGHTS"] = meta["weights_dir"]
        st = _update_status(job.dir, state="running", phase="training", attached=True, pid=os.getpid(),
                            pgid=os.getpgid(0), error=None, phase_at=time.time())
        _update_status(job.dir, started=st.get("started") or time.time(), runs=st.get("runs", 0) + 1)
        if st.get("cancel_requested"):
            raise _Cancelled()
        cfg = job.config
        if not st.get("weights_saved") and not cfg.overwrite and \
                (Path(meta["weights_dir"]) / f"{cfg.out}.safetensors").exists():
            raise JobError(f"weights named {cfg.out!r} appeared meanwhile; start a new job with another name")
        log_every = max(1, min(10, cfg.steps // 100))  # about 100 points per curve
        tcfg = TrainConfig(
            data=str(job.dir / "images" / "train"), val_data=str(job.dir / "images" / "holdout"),
            init=cfg.base, out=cfg.out, steps=cfg.steps, batch_size=cfg.batch_size, crop=cfg.crop, lr=cfg.lr,
            warmup=min(20, max(1, cfg.steps // 10)),  # the base is trained: a short ramp suffices
            val_every=max(1, (cfg.val_every or cfg.steps // 10) // log_every) * log_every, log_every=log_every,
            checkpoint_minutes=cfg.checkpoint_seconds / 60, run_dir=str(job.dir),
            weights_dir=meta["weights_dir"], seed=cfg.seed, threads=cfg.threads,
            quality_min=cfg.quality_min, quality_max=cfg.quality_max or 0)
        card = train(tcfg, progress=(lambda rec, total: progress("training", rec["step"], total, rec))
                     if progress else None)
        if not card:  # train() stopped on SIGTERM or Ctrl-C after writing its checkpoint
            raise _Cancelled()
        _update_status(job.dir, weights_saved=True, phase="evaluating", phase_at=time.time())
        result = evaluate(job, progress=(lambda d, t, label: progress("evaluating", d, t, {"label": label}))
                          if progress else None)
        _write_json(job.dir / "result.json", result)
        _update_card(job, result)
        _update_status(job.dir, state="finished", phase=None, finished=time.time())
    except (_Cancelled, KeyboardInterrupt):
        _update_status(job.dir, state="cancelled", phase=None, finished=time.time(), step=_last_step(job))
    except Exception as e:
        with open(job.dir / "worker.log", "a") as log:  # the details, for whoever debugs it
            traceback.print_exc(file=log)
        _update_status(job.dir, state="failed", phase=None, finished=time.time(), step=_last_step(job),
                       error=f"{e}" if isinstance(e, (JobError, weights.WeightsError, io.ImageError))
                       else f"{type(e).__name__}: {e}")
    finally:
        signal.signal(signal.SIGTERM, previous)
        os.close(lock)
    _schedule(job.dir.parent)  # a slot is free: start the next queued job
    return job.reload()


def evaluate(job: Job, progress=None) -> dict:
    """Rate-distortion of the base and the new weights on the hold-out images.

    Both are swept at the same learned qualities (`eval_qualities`); the curves are averaged
    over images (rd.average), and BD-rate is of the new weights against the base, by PSNR
    and by MS-SSIM (negative: the fine-tuned weights need fewer bits for the same quality).
    """
    from . import rd

    cfg = job.config
    images = io.load_image_folder_named(job.dir / "images" / "holdout")
    qualities = eval_qualities(cfg)
    # PSNR and MS-SSIM only: SSIMULACRA 2 would cost more than the coding, and nothing here shows it
    rows = rd.sweep(images, {cfg.base: qualities, cfg.out: qualities}, progress=progress, perceptual=False)
    curves = {}
    for row in rd.average(rows):
        who = "base" if row["codec"] == cfg.base else "new"
        curves.setdefault(who, []).append({k: row[k] for k in ("quality", "bpp", "psnr", "ms_ssim", "ms_ssim_db")})
    bd = {}
    for metric in ("psnr", "ms_ssim_db"):
        value = rd.bd_table(rows, anchor=cfg.base, metric=metric).get(cfg.out, float("nan"))
        bd[metric] = round(value, 3) if math.isfinite(value) else None
    return {"job": job.id, "base": cfg.base, "weights": cfg.out, "steps": cfg.steps,
            "holdout_images": list(images), "qualities": qualities,
            "bd_rate": bd["psnr"], "bd_rate_ms_ssim": bd["ms_ssim_db"],
            "base_rd": curves.get("base", []), "new_rd": curves.get("new", []),
            "rows": [{k: r[k] for k in ("image", "codec", "quality", "bpp", "psnr", "ms_ssim")} for r in rows]}


def _update_card(job: Job, result: dict) -> None:
    cfg = job.config
    card = weights.read_card(cfg.out)
    n = len(job.train_images)
    data = f"{n} user image{'s' * (n != 1)}" + (f": {cfg.description}" if cfg.description else "")
    weights.update_card(cfg.out, {
        "label": f"{cfg.out} (fine-tuned from {cfg.base})",
        "base": cfg.base,
        "training": {**card.get("training", {}), "data": data, "init": cfg.base},
        "fine_tune": {"base": cfg.base, "data": data, "steps": cfg.steps, "lr": cfg.lr, "job": job.id,
                      "quality_range": [cfg.quality_min, cfg.quality_max],
                      "holdout": {k: result[k] for k in ("holdout_images", "qualities", "bd_rate",
                                                         "bd_rate_ms_ssim", "base_rd", "new_rd")}},
    })


def _last_step(job: Job) -> int:
    records = job.log()
    return records[-1]["step"] if records else 0


# --------------------------------------------------------------------------- status and liveness

def _write_json(path: Path, obj) -> None:
    io.atomic_write(Path(path), lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=1) + "\n"))


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive flock on `path` (created if missing); blocks until it is free."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_status(job_dir: Path) -> dict:
    try:
        return json.loads((job_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {"state": "failed", "error": "status.json is missing or unreadable"}


def _update_status(job_dir: Path, **changes) -> dict:
    """Read-modify-write of status.json under its lock, so worker and app never lose a field."""
    with _locked(job_dir / ".status.lock"):
        status = {**_read_status(job_dir), **changes}
        _write_json(job_dir / "status.json", status)
    return status


def _take_worker_lock(job_dir: Path) -> int | None:
    """An fd holding worker.lock exclusively, or None when another live process holds it."""
    fd = os.open(job_dir / "worker.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        return None


def _worker_alive(job_dir: Path, status: dict) -> bool:
    fd = _take_worker_lock(job_dir)
    if fd is None:
        return True  # some process holds the lock: the worker lives
    os.close(fd)
    # Not locked: either the worker is gone, or it was spawned and has not taken the lock yet.
    spawned = status.get("spawned") or 0
    return (not status.get("attached") and time.time() - spawned < _SPAWN_GRACE_SECONDS
            and _pid_alive(status.get("pid")))


def _pid_alive(pid) -> bool:
    if not pid:
        return True  # between setting 'running' and Popen returning: give it the grace period
    child = _children.get(pid)
    if child is not None and child.poll() is not None:  # reaps our own finished workers
        _children.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie answers kill(pid, 0) but is dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _check_worker(job_dir: Path) -> dict:
    """status.json, with a 'running' job whose worker is gone marked failed (or cancelled)."""
    status = _read_status(job_dir)
    if status.get("state") != "running" or _worker_alive(job_dir, status):
        return status
    with _locked(job_dir / ".status.lock"):
        status = _read_status(job_dir)
        if status.get("state") != "running" or _worker_alive(job_dir, status):
            return status
        if status.get("cancel_requested"):
            status.update(state="cancelled", phase=None, finished=time.time())
        else:
            step = (read_log(job_dir / "log.jsonl") or [{"step": 0}])[-1]["step"]
            status.update(state="failed", phase=None, finished=time.time(), step=step,
                          error=f"the worker process stopped unexpectedly near step {step} (killed, out of "
                                "memory or crashed; see worker.log); resume continues from the last checkpoint")
        _write_json(job_dir / "status.json", status)
    return status


# ------------------------------------------------------------------------------------ entry point

def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "run":
        print("usage: python -m aecore.jobs run JOB_DIR", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_cancelled)  # cancelled while still loading
    job_dir = Path(argv[1])
    try:
        job = run(_load(job_dir))
    except _Cancelled:  # before run() took over, or after it was done (then the state stands)
        with _locked(job_dir / ".status.lock"):
            status = _read_status(job_dir)
            if status.get("state") == "running":
                status.update(state="cancelled", phase=None, finished=time.time())
                _write_json(job_dir / "status.json", status)
        return 1
    except JobError as e:
        print(f"aecore.jobs: {e}", file=sys.stderr)
        return 2
    print(f"aecore.jobs: {job.id} {job.state}" + (f": {job.error}" if job.error else ""), file=sys.stderr)
    return 0 if job.state == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
