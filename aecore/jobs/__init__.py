"""Fine-tuning jobs: each one runs in its own process and keeps everything in its own folder.

    p = jobs.plan(jobs.JobConfig(base="hyperprior", out="my-photos"), images)  # problems, seconds, split
    job = jobs.create_job(jobs.JobConfig(base="hyperprior", out="my-photos"), images)
    jobs.start(job)                 # running in a background process, or queued for a free slot
    job.reload().progress()         # step, total, fraction, steps/s, seconds left, log records
    jobs.cancel(job); jobs.resume(job)
    jobs.list_jobs()                # newest first; also starts queued jobs when slots are free

    python -m aecore.jobs run JOB_DIR   # the worker that start() spawns (also resumes in the foreground)

One module per role: `config` (the configuration, the limits, the rules and the estimate),
`store` (the job folder: what a job is, read from disk), `schedule` (the queue and the worker
processes), `worker` (the worker's body), `evaluation` (the before/after comparison and the model
card), `planning` (the page's one call). The app only reads job folders; nothing about a job
lives in the app's memory.

States: created -> queued -> running -> finished | failed | cancelled; failed and cancelled
jobs resume from their checkpoint. The new weights go to `weights.user_dir()/OUT.safetensors`
+ `OUT.json` (the model card gains a `fine_tune` entry: base, data, steps and the hold-out
results), so they appear in the model picker.
"""
from .config import (ACTIVE, EVAL_SECONDS_PER_MEGAPIXEL, MAX_CONCURRENT, MAX_IMAGES, MAX_STEPS, STARTUP_SECONDS,
                     STATES, STEPS_PER_SECOND, STOPPED, JobConfig, JobError, check_config, estimate_seconds,
                     eval_qualities, holdout_count, jobs_dir, max_concurrent, max_images, max_steps)
from .evaluation import evaluate
from .planning import Plan, plan
from .schedule import cancel, list_jobs, queue_wait, refresh, resume, start
from .store import Job, create_job, delete, load_job, making, queue_position, read_log
from .worker import main, run

__all__ = ["ACTIVE", "EVAL_SECONDS_PER_MEGAPIXEL", "MAX_CONCURRENT", "MAX_IMAGES", "MAX_STEPS", "STARTUP_SECONDS",
           "STATES", "STEPS_PER_SECOND", "STOPPED", "Job", "JobConfig", "JobError", "Plan", "cancel",
           "check_config", "create_job", "delete", "estimate_seconds", "eval_qualities", "evaluate",
           "holdout_count", "jobs_dir", "list_jobs", "load_job", "main", "max_concurrent", "max_images",
           "max_steps", "making", "plan", "queue_position", "queue_wait", "read_log", "refresh", "resume", "run", "start"]
