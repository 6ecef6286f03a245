"""Scheduling and process supervision: the queue, the worker processes, cancel and resume.

Why processes: a fine-tune runs for minutes, longer than a page run or a browser tab lives.
`start` spawns a worker (`python -m aecore.jobs run JOB_DIR`) in a new session
(`start_new_session=True`), so closing the app does not stop it, and `cancel` sends SIGTERM to
that session's process group; `train.train` checkpoints on SIGTERM, and `resume` continues
exactly from that checkpoint. At most `max_concurrent()` jobs run at once; the worker that
ends starts the next queued job, and `refresh()`/`list_jobs()` do too, so a crashed worker
never blocks the queue. POSIX only (process groups).
"""
from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from .config import ACTIVE, STOPPED, JobError, jobs_dir, max_concurrent
from .store import Job, _all_jobs, _locked, _update_status, children


def list_jobs() -> list[Job]:
    """All jobs, newest first, after `refresh()`."""
    refresh()
    return _all_jobs(jobs_dir())


def refresh() -> None:
    """Marks jobs whose worker died as failed and starts queued jobs while slots are free."""
    _schedule(jobs_dir())


def queue_wait(all_jobs: list[Job]) -> float:
    """Seconds until a slot is free for a new job (0 when one is free now)."""
    active = [j for j in all_jobs if j.state in ACTIVE]
    if len(active) < max_concurrent():
        return 0.0
    return sum(j.progress()["seconds_left"] for j in active) / max_concurrent()


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


children: dict[int, subprocess.Popen] = {}  # workers this process spawned, reaped by _pid_alive


def _schedule(root: Path) -> None:
    """Fails dead workers' jobs, then spawns queued jobs (oldest first) into free slots."""
    for pid, child in list(children.items()):  # reap our finished workers (no zombies)
        if child.poll() is not None:
            children.pop(pid, None)
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
    package_root = str(Path(__file__).resolve().parents[2])  # the folder holding aecore/
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
    children[proc.pid] = proc
    _update_status(job.dir, pid=proc.pid, pgid=proc.pid)


