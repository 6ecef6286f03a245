"""The job-folder store: a job is a folder, and everything about it is read from there.

A job folder, `jobs_dir()/<id>/`:

    config.json       the JobConfig (holdout, crop and quality range resolved), the image split
                      and the images left out (with why)
    images/train/     training images (PNG)
    images/holdout/   held-out images (PNG): validation curves and the final before/after comparison
    status.json       state, phase, pid, timestamps, error (written by the worker and by cancel)
    log.jsonl         training log of `train.train`: step, loss, bpp, psnr, lr, seconds, it_per_s, val
    checkpoint.pt     exact resume point (model, optimizer, step, RNG)
    worker.log        the worker's standard output and error
    result.json       hold-out rate-distortion of the base and the new weights, BD-rate

A worker holds an exclusive lock on `worker.lock` while it lives (the operating system drops
it when the process dies, even on SIGKILL), which is how a 'running' job whose process is
gone is told apart from a live one. POSIX only (flock).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
import fcntl
import json
import os
from pathlib import Path
import re
import secrets
import shutil
import subprocess
import time

import numpy as np

from .. import io, weights
from .config import ACTIVE, STOPPED, JobConfig, JobError, estimate_seconds, eval_seconds, jobs_dir, resolve

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_SPAWN_GRACE_SECONDS = 120.0  # a spawned worker has this long to take its lock
children: dict[int, subprocess.Popen] = {}  # workers this process spawned (see schedule), reaped by _pid_alive


@dataclass
class Job:
    """A job folder as last read; `reload()` reads it again."""

    id: str
    dir: Path
    config: JobConfig
    train_images: list[str] = field(default_factory=list)
    holdout_images: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)  # image name -> why it was not used
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
        eval_s = eval_seconds(self.config, len(self.holdout_images), st.get("holdout_megapixels", 0.4))
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


# -------------------------------------------------------------------------------------- creating

def create_job(config: JobConfig, images: dict[str, np.ndarray]) -> Job:
    """A new job folder holding the config and the images, split into train and hold-out.

    `config.resolve` decides the split and which images are left out (smaller than the
    crop; listed in config.json with the reason). The folder is built under a hidden name
    and renamed into place, so no reader ever sees half a job.
    """
    rgb = {}
    for name, img in images.items():
        try:
            rgb[name] = io.to_rgb(np.asarray(img))
        except io.ImageError as e:
            raise JobError(f"image {name!r}: {e}") from None
    config, parts = resolve(config, {n: p.shape[:2] for n, p in rgb.items()}, making=making())
    pixels = {parts.stems[n]: p for n, p in rgb.items()}
    train, holdout = parts.train, parts.holdout

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
                                          "images": {"train": train, "holdout": holdout},
                                          "left_out": parts.left_out})
        _write_json(tmp / "status.json", {"state": "created", "phase": None, "created": time.time(),
                                          "pid": None, "error": None, "runs": 0,
                                          "holdout_megapixels": round(megapixels, 4)})
        os.rename(tmp, root / job_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_job(job_id)



def making(all_jobs: list[Job] | None = None) -> set[str]:
    """Names of the weights that queued and running jobs (default: all in jobs_dir()) are making."""
    return {j.config.out for j in (_all_jobs(jobs_dir()) if all_jobs is None else all_jobs) if j.state in ACTIVE}


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
              train_images=meta["images"]["train"], holdout_images=meta["images"]["holdout"],
              left_out=meta.get("left_out", {}))
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
    child = children.get(pid)
    if child is not None and child.poll() is not None:  # reaps our own finished workers
        children.pop(pid, None)
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


