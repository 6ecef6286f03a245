"""Fine-tuning jobs: real background workers on tiny models, cancel/resume, the queue, limits, the CLI."""
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import pytest

from aecore import jobs, weights
from aecore.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 90  # seconds a background job may take on a busy 2-core machine


@pytest.fixture
def images(photo) -> dict:
    """Four 80x96 crops of the test photo: three to train on, one held out."""
    return {f"crop{i}": np.ascontiguousarray(photo[i * 5:i * 5 + 80, i * 10:i * 10 + 96]) for i in range(4)}


@pytest.fixture
def jobs_env(tmp_path, monkeypatch, user_weights):
    monkeypatch.setenv("AECORE_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("AECORE_MAX_JOBS", "1")
    return tmp_path / "jobs"


def _config(out, **kw) -> jobs.JobConfig:
    # One thread: on a busy machine, two threads of a tiny model mostly wait for each other.
    return jobs.JobConfig(**{"base": "tiny-hyper", "out": out, "steps": 10, "crop": 64, "batch_size": 2,
                             "threads": 1, **kw})


def _wait(job, until, timeout=TIMEOUT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job.reload()
        if until(job):
            return job
        time.sleep(0.2)
    log = (job.dir / "worker.log").read_text() if (job.dir / "worker.log").exists() else ""
    raise AssertionError(f"timed out: {job.id} is {job.state} ({job.error}); worker.log:\n{log[-2000:]}")


def _steps(job) -> list[int]:
    return [r["step"] for r in job.progress()["records"]]


def test_lifecycle_and_queue(jobs_env, images):
    """Two jobs, one slot: the first runs in a background process, the second waits its turn."""
    first = jobs.create_job(_config("ft-first", steps=6, val_every=3, description="astronaut crops"), images)
    assert first.state == "created" and len(first.holdout_images) == 1 and len(first.train_images) == 3
    assert sorted(p.name for p in (first.dir / "images" / "holdout").iterdir()) == [f"{first.holdout_images[0]}.png"]
    second = jobs.create_job(_config("ft-second", steps=3, val_every=3), images)
    jobs.start(first)
    jobs.start(second)
    assert first.state == "running" and first.status["pid"] and second.state == "queued"
    assert jobs.queue_position(second) == 1 and jobs.queue_position(first) is None
    assert second.progress()["queue_position"] == 1 and second.progress()["seconds_left"] > 0
    _wait(first, lambda j: j.progress()["step"] > 0 or j.state != "running")
    _wait(second, lambda j: j.state not in jobs.ACTIVE)  # the first job's worker starts it
    assert first.reload().state == "finished" and second.state == "finished", (first.error, second.error)
    assert first.status["finished"] <= second.status["started"]
    assert [j.id for j in jobs.list_jobs()] == [second.id, first.id]

    p = first.progress()
    assert p["step"] == p["total"] == 6 and p["fraction"] == 1.0 and p["seconds_left"] == 0
    assert {"loss", "bpp", "psnr", "it_per_s"} <= set(p["records"][0]) and "val" in p["records"][2]
    assert {"ft-first", "ft-second"} <= set(weights.available())
    card = weights.read_card("ft-first")
    assert card["base"] == "tiny-hyper" and card["fine_tune"]["steps"] == 6
    assert card["fine_tune"]["data"] == "3 user images: astronaut crops" and card["fine_tune"]["holdout"]["new_rd"]

    result = first.result()
    assert result["base"] == "tiny-hyper" and result["weights"] == "ft-first"
    assert result["qualities"] == [1, 3, 5, 8] and result["holdout_images"] == first.holdout_images
    for key in ("base_rd", "new_rd"):
        assert [r["quality"] for r in result[key]] == [1, 3, 5, 8]
        assert all(r["bpp"] > 0 and np.isfinite(r["psnr"]) for r in result[key])
    assert "bd_rate" in result  # None when the tiny random curves do not overlap


def test_cancel_kill_and_resume(jobs_env, images):
    """Cancel checkpoints and resumes exactly; a SIGKILLed worker is seen as failed and resumes too."""
    job = jobs.start(jobs.create_job(_config("ft-stop", steps=50, checkpoint_seconds=0, val_every=25), images))
    _wait(job, lambda j: j.progress()["step"] >= 2 or j.state != "running")
    jobs.cancel(job, wait=30)
    assert job.state == "cancelled" and job.resumable
    cancelled_at = _steps(job)[-1]
    assert 2 <= cancelled_at < 50 and "ft-stop" not in weights.available()

    jobs.resume(job)
    _wait(job, lambda j: j.progress()["step"] >= cancelled_at + 2 or j.state != "running")
    assert job.state == "running"
    os.killpg(job.status["pgid"], signal.SIGKILL)
    _wait(job, lambda j: j.state != "running", timeout=10)
    assert job.state == "failed" and job.resumable and "resume" in job.error
    assert not any(j.state == "running" for j in jobs.list_jobs())

    jobs.resume(job)
    _wait(job, lambda j: j.state not in jobs.ACTIVE)
    assert job.state == "finished", job.error
    assert _steps(job) == list(range(1, 51)) and job.status["runs"] == 3
    assert f"resuming ft-stop from step {cancelled_at}" in (job.dir / "worker.log").read_text()
    assert weights.read_card("ft-stop")["training"]["steps"] == 50


def test_names_are_validated(jobs_env, images, tmp_path, monkeypatch):
    for bad in ("bad name!", "../up", ""):
        with pytest.raises(jobs.JobError, match="letters, digits"):
            jobs.create_job(_config(bad), images)
    for taken in ("hyperprior", "seed", "jpeg"):
        with pytest.raises(jobs.JobError, match="shipped weights or of a codec"):
            jobs.create_job(_config(taken), images)
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "ours.json").write_text("{}")
    monkeypatch.setattr(weights, "SHIPPED_DIR", shipped)
    with pytest.raises(jobs.JobError, match="shipped"):
        jobs.create_job(_config("ours"), images)
    with pytest.raises(jobs.JobError, match="exist already"):
        jobs.create_job(_config("tiny-seed"), images)
    assert jobs.create_job(_config("tiny-seed", overwrite=True), images).state == "created"
    with pytest.raises(jobs.JobError, match="other than the base"):
        jobs.create_job(_config("tiny-hyper", overwrite=True), images)
    with pytest.raises(jobs.JobError, match="no weights named 'nope'"):
        jobs.create_job(_config("fine", base="nope"), images)
    with pytest.raises(jobs.JobError, match="invalid job id"):
        jobs.load_job("../etc")


def test_limits_are_enforced(jobs_env, images, monkeypatch):
    monkeypatch.setenv("AECORE_MAX_STEPS", "50")
    with pytest.raises(jobs.JobError, match="between 1 and 50.*AECORE_MAX_STEPS"):
        jobs.create_job(_config("many", steps=51), images)
    monkeypatch.setenv("AECORE_MAX_IMAGES", "3")
    with pytest.raises(jobs.JobError, match="4 images are more than the limit of 3.*AECORE_MAX_IMAGES"):
        jobs.create_job(_config("many"), images)
    monkeypatch.delenv("AECORE_MAX_IMAGES")
    with pytest.raises(jobs.JobError, match="at least 2 images"):
        jobs.create_job(_config("one"), {"a": images["crop0"]})
    with pytest.raises(jobs.JobError, match="holdout must be between 1 and 3"):
        jobs.create_job(_config("all-out", holdout=4), images)
    with pytest.raises(jobs.JobError, match="quality range"):
        jobs.create_job(_config("q", quality_min=5, quality_max=3), images)
    assert jobs.list_jobs() == []


def test_split_is_deterministic_and_estimate_is_plain(jobs_env, images):
    a = jobs.create_job(_config("split-a", holdout=2, seed=3), images)
    b = jobs.create_job(_config("split-b", holdout=2, seed=3), images)
    assert a.holdout_images == b.holdout_images and len(a.holdout_images) == 2
    assert json.loads((a.dir / "config.json").read_text())["images"]["holdout"] == a.holdout_images
    default = jobs.JobConfig(base="hyperprior", out="x")
    seconds = jobs.estimate_seconds(default, 10)
    assert 200 / jobs.STEPS_PER_SECOND < seconds < 600  # DESIGN.md: 200 steps on 10 images in < 10 min
    assert jobs.estimate_seconds(jobs.JobConfig(base="hyperprior", out="x", steps=400), 10) > seconds


def test_cli_finetune(tmp_path, user_weights, images):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, pixels in {**images, "dot": np.zeros((1, 1, 3), np.uint8)}.items():
        Image.fromarray(pixels).save(folder / f"{name}.png")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AECORE_JOBS_DIR": str(tmp_path / "jobs"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "aecore", "finetune", "--base", "tiny-hyper", "--images", str(folder),
           "--steps", "3", "--out", "cli-ft", "--crop", "64", "--batch-size", "2"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr[-2000:]
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["weights"] == "cli-ft" and record["base"] == "tiny-hyper" and record["steps"] == 3
    assert "bd_rate" in record and [r["quality"] for r in record["holdout"]["new"]] == [1, 3, 5, 8]
    assert {"bpp", "psnr"} <= set(record["holdout"]["base"][0])
    assert "3/3" in out.stderr and (user_weights / "cli-ft.safetensors").exists()
    assert "left out dot: 1x1 px is smaller than the 64 px training crop" in out.stderr
    assert record["left_out"] == {"dot": "1x1 px is smaller than the 64 px training crop"}


def test_cli_finetune_bad_input(tmp_path, user_weights, images, capsys, monkeypatch):
    monkeypatch.setenv("AECORE_JOBS_DIR", str(tmp_path / "jobs"))
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, pixels in images.items():
        Image.fromarray(pixels).save(folder / f"{name}.png")
    assert main(["finetune", "--base", "tiny-hyper", "--images", str(folder), "--out", "bad name"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "letters, digits" in err[0]
    assert main(["finetune", "--base", "tiny-hyper", "--images", str(tmp_path / "none"), "--out", "x1"]) == 2
    assert main(["finetune", "--base", "tiny-hyper", "--images", str(folder), "--out", "x2",
                 "--steps", "999999"]) == 2
    assert "AECORE_MAX_STEPS" in capsys.readouterr().err


def test_images_smaller_than_the_crop_are_left_out(jobs_env, images):
    """A 1x1 image neither shrinks the crop nor is trained on: it is listed, with the reason."""
    given = {**images, "dot": np.zeros((1, 1, 3), np.uint8), "strip": np.zeros((200, 40, 3), np.uint8)}
    job = jobs.create_job(_config("ft-dot"), given)
    assert job.config.crop == 64
    assert job.left_out == {"dot": "1x1 px is smaller than the 64 px training crop",
                            "strip": "40x200 px is smaller than the 64 px training crop"}
    assert sorted(job.train_images + job.holdout_images) == sorted(images)
    assert json.loads((job.dir / "config.json").read_text())["left_out"] == job.left_out
    with pytest.raises(jobs.JobError, match="at least 2 images of at least 64x64 px"):
        jobs.create_job(_config("ft-dots"), {"dot": given["dot"], "dot2": given["dot"], "a": images["crop0"]})


def test_the_plan_is_what_create_job_does(jobs_env, images):
    config = _config("ft-plan", holdout=2, seed=3, crop=100)  # rounded down to the model's stride
    p = jobs.plan(config, images)
    assert not p.problems and p.queue_wait == 0
    job = jobs.create_job(config, images)
    assert p.config == job.config and p.config.crop == 64 and p.config.quality_max == weights.meta_model(
        "tiny-hyper").levels
    assert (p.train, p.holdout) == (job.train_images, job.holdout_images)
    assert p.seconds == jobs.estimate_seconds(job.config, 4, job.status["holdout_megapixels"])
    jobs.start(job)  # queued behind nothing: it runs; a second plan waits for it and may not take its name
    later = jobs.plan(config, images)
    assert later.queue_wait > 0 and later.problems == [
        "output name: a running or queued job is already making weights named 'ft-plan'; "
        "choose another name or cancel that job"]
    jobs.cancel(job, wait=30)
    bad = jobs.plan(_config("jpeg", steps=0, quality_max=99), {"a": images["crop0"]})
    assert [m.split(" ")[0] for m in bad.problems] == ["output"]  # the first problem of the settings
    assert jobs.plan(_config("ok", crop=1000), images).problems[0].startswith("crop must be between 64 and 512")


def test_reserved_names_come_from_the_model_registry(jobs_env, images, monkeypatch):
    from aecore import registry
    monkeypatch.setitem(registry.ARCHITECTURES, "newarch", "aecore.models.newarch:NewArch")
    assert "newarch" in weights.reserved_names()
    with pytest.raises(jobs.JobError, match="shipped weights or of a codec"):
        jobs.create_job(_config("NewArch"), images)
    assert weights.suggest_name("tiny-seed") == "tiny-seed-ft"
    assert weights.suggest_name("tiny-seed", own=True) == "tiny-seed-ft"  # taken: installed
    assert weights.suggest_name("fresh", making={"fresh-ft"}, own=True) == "fresh"
    assert weights.suggest_name("fresh", making={"FRESH-ft"}) == "fresh-ft2"
    assert weights.suggest_name("bad name") == "imported-ft"
