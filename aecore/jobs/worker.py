"""The worker body: one job, trained and evaluated in this process (`python -m aecore.jobs run JOB_DIR`).

`schedule.start` spawns this in a background process; `python -m aecore finetune` runs
`run` in the foreground. SIGTERM and Ctrl-C cancel after a checkpoint; the end state
(finished, cancelled or failed with its error) is written to the job's status.json.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import signal
import sys
import time
import traceback

from .. import io, weights
from .config import JobError
from .evaluation import evaluate, update_card
from .schedule import _schedule
from .store import Job, _load, _locked, _read_status, _take_worker_lock, _update_status, _write_json


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
    from ..train import TrainConfig, train

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
        update_card(job, result)
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


def _last_step(job: Job) -> int:
    records = job.log()
    return records[-1]["step"] if records else 0


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

