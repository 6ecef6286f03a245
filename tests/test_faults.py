"""Faults: folders that cannot be written, a disk that fills up mid-write, processes killed.

What tests/test_jobs.py already covers (cancel, SIGKILL with a checkpoint every step, resume)
is not repeated; this adds the faults around it:
- the jobs folder or the user-weights folder cannot be written: a clear message (library,
  command line, Fine-tune page), and a job whose weights cannot be saved fails saying why
  and, once the folder is fixed, resumes without training again;
- `weights.save` failing half-way through a file leaves the previous weights intact;
- SIGKILL while weights are being written never leaves a pair that does not load;
- SIGKILL of a job between checkpoints loses only the steps since the last one: resume
  redoes them, the log keeps one record per step, the weights load.

As root, permission bits do not stop writes, so "cannot be written" is made with a regular
file where the folder should be (the same OSError path as a read-only folder).
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
import torch

from aecore import jobs, weights
from aecore.__main__ import main
from aecore.codecs import get_codec
from aecore.io import to_png_bytes
from tests.conftest import make_tiny, file_sha256

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 90  # seconds a background job may take on a busy 2-core machine


@pytest.fixture
def images() -> dict:
    rng = np.random.default_rng(0)
    return {f"im{i}": rng.integers(0, 256, (64, 80, 3), dtype=np.uint8) for i in range(3)}


@pytest.fixture
def blocked(tmp_path) -> Path:
    """A regular file: any folder asked for beneath it cannot be created."""
    path = tmp_path / "not-a-folder"
    path.write_text("a file where a folder should be\n")
    return path


def _config(out: str, **kw) -> jobs.JobConfig:
    return jobs.JobConfig(**{"base": "tiny-hyper", "out": out, "steps": 3, "crop": 64, "batch_size": 2,
                             "threads": 1, "checkpoint_seconds": 0, **kw})


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


# --- folders that cannot be written -----------------------------------------------------

def test_unwritable_jobs_folder(user_weights, blocked, images, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AECORE_JOBS_DIR", str(blocked / "jobs"))
    assert jobs.list_jobs() == []  # listing copes: there are simply no jobs
    with pytest.raises(OSError) as err:
        jobs.create_job(_config("ft-blocked"), images)
    assert str(blocked / "jobs") in str(err.value)
    assert blocked.read_text() == "a file where a folder should be\n"

    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, pixels in images.items():
        (folder / f"{name}.png").write_bytes(to_png_bytes(pixels))
    code = main(["finetune", "--base", "tiny-hyper", "--images", str(folder), "--out", "ft-cli", "--steps", "2",
                 "--crop", "64"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "Traceback" not in lines[0]
    assert str(blocked / "jobs") in lines[0] and "Not a directory" in lines[0]


def test_unwritable_jobs_folder_is_not_an_internal_error(user_weights, blocked, images, tmp_path, monkeypatch,
                                                         capsys):
    monkeypatch.setenv("AECORE_JOBS_DIR", str(blocked / "jobs"))
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, pixels in images.items():
        (folder / f"{name}.png").write_bytes(to_png_bytes(pixels))
    code = main(["finetune", "--base", "tiny-hyper", "--images", str(folder), "--out", "ft-cli", "--steps", "2",
                 "--crop", "64"])
    assert code == 2 and "internal error" not in capsys.readouterr().err


def test_unwritable_jobs_folder_on_the_fine_tune_page(user_weights, blocked, tmp_path, monkeypatch):
    monkeypatch.setenv("AECORE_JOBS_DIR", str(blocked / "jobs"))
    monkeypatch.setattr(weights, "SHIPPED_DIR", tmp_path / "no_shipped_weights")
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/fine_tune.py").run()
    assert not at.exception and not at.error
    at.checkbox(key="ft_use_samples").check().run()
    at.text_input(key="ft_name").set_value("ft-page").run()
    at.button(key="ft_start").click().run()
    assert not at.exception
    assert any("Not a directory" in e.value and "jobs" in e.value for e in at.error), [e.value for e in at.error]


def test_unwritable_user_weights_folder(blocked, monkeypatch):
    monkeypatch.setenv("AECORE_USER_WEIGHTS", str(blocked / "weights"))
    assert set(weights.available()) <= {p.stem for p in weights.SHIPPED_DIR.glob("*.json")}
    with pytest.raises(OSError) as err:
        weights.save(make_tiny("tiny-seed"), "mine", weights.user_dir())
    assert str(blocked / "weights") in str(err.value)


@pytest.fixture
def torch_threads():
    """A job run in this process sets torch's thread count (process-wide): put it back after."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_job_whose_weights_cannot_be_saved_fails_clearly_then_resumes(user_weights, tmp_path, monkeypatch, images,
                                                                     capsys, torch_threads):
    """The run trains, cannot write its weights, says so; fixed, it resumes without training again."""
    monkeypatch.setenv("AECORE_JOBS_DIR", str(tmp_path / "jobs"))
    job = jobs.create_job(_config("ft-denied"), images)
    write_bytes = Path.write_bytes

    def denied(self, *args, **kwargs):
        if self.parent == user_weights:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return write_bytes(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_bytes", denied)
    jobs.run(job)  # in this process: the worker's body, as `python -m aecore finetune` runs it
    assert job.state == "failed" and job.resumable
    assert "Permission denied" in job.error and str(user_weights) in job.error
    assert [r["step"] for r in job.log()] == [1, 2, 3]
    assert "ft-denied" not in weights.available()
    assert not [n for n in _files(user_weights) if n.startswith(".")], "a temporary file was left behind"

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    capsys.readouterr()
    jobs.run(job)
    assert job.state == "finished", job.error
    assert "resuming ft-denied from step 3" in capsys.readouterr().err
    assert [r["step"] for r in job.log()] == [1, 2, 3] and job.status["runs"] == 2
    model, card = weights.load("ft-denied")
    assert card["training"]["steps"] == 3 and card["fine_tune"]["steps"] == 3


# --- a write that fails half-way --------------------------------------------------------

def test_failed_save_leaves_the_old_weights(user_weights, photo):
    before = {n: (user_weights / n).read_bytes() for n in ("tiny-hyper.safetensors", "tiny-hyper.json")}
    stream = get_codec("tiny-hyper").encode(photo, 5.0)

    def disk_full(self, data):
        with open(self, "wb") as f:  # half a file, then the disk is full
            f.write(data[:1000])
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "write_bytes", disk_full)
        with pytest.raises(OSError, match="No space left"):
            weights.save(make_tiny("tiny-hyper", seed=1), "tiny-hyper", user_weights)
    assert {n: (user_weights / n).read_bytes() for n in before} == before
    assert _files(user_weights) == {"tiny-hyper.safetensors", "tiny-hyper.json", "tiny-seed.safetensors",
                                    "tiny-seed.json"}
    get_codec("tiny-hyper").decode(stream)  # the old weights still decode their streams

    # The tensors were written but the card could not be: the pair still loads (same config).
    write_text = Path.write_text

    def card_fails(self, *args, **kwargs):
        if self.parent == user_weights:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_text(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "write_text", card_fails)
        with pytest.raises(OSError, match="No space left"):
            weights.save(make_tiny("tiny-hyper", seed=1), "tiny-hyper", user_weights)
    model, card = weights.load("tiny-hyper")
    assert card["sha256"] == file_sha256(user_weights / "tiny-hyper.safetensors")
    assert not [n for n in _files(user_weights) if n.startswith(".")]


# --- killed processes -------------------------------------------------------------------

_SAVER = """
import sys
from aecore import weights
from tests.conftest import make_tiny
models = [make_tiny("tiny-seed", seed=0), make_tiny("tiny-seed", seed=1)]
for i in range(100000):
    weights.save(models[i % 2], "flip", sys.argv[1])
    print(i, flush=True)
"""


def test_sigkill_while_saving_weights_never_leaves_a_broken_pair(tmp_path, monkeypatch):
    folder = tmp_path / "user_weights"
    monkeypatch.setenv("AECORE_USER_WEIGHTS", str(folder))
    hashes = {weights.save(make_tiny("tiny-seed", seed=s), "flip", folder)["sha256"] for s in (0, 1)}
    assert len(hashes) == 2
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    rng = random.Random(0)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(folder)], stdout=subprocess.PIPE, text=True,
                                env=env, cwd=ROOT)
        try:
            for _ in range(3):  # the saving loop is running
                assert proc.stdout.readline(), "the saver stopped"
            time.sleep(rng.uniform(0, 0.2))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc.stdout.close()
        model, card = weights.load("flip")
        assert card["sha256"] in hashes and card["config"]["arch"] == "seed"
    leftovers = [n for n in _files(folder) if n.startswith(".")]
    assert all(n.startswith(".flip.") for n in leftovers), leftovers  # at most the killed writes' temporary files
    assert "flip" in weights.available() and len(weights.available()) == 1


def test_sigkill_between_checkpoints_loses_only_the_steps_since(user_weights, tmp_path, monkeypatch, images):
    """test_jobs checkpoints every step; here checkpoints are a second apart, so a kill loses work."""
    monkeypatch.setenv("AECORE_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("AECORE_MAX_JOBS", "1")
    steps = 150
    job = jobs.start(jobs.create_job(_config("ft-lost", steps=steps, checkpoint_seconds=1, val_every=75), images))
    checkpoint = job.dir / "checkpoint.pt"
    deadline = time.time() + TIMEOUT
    while time.time() < deadline and job.reload().state == "running" and not checkpoint.exists():
        time.sleep(0.05)
    assert job.state == "running", job.error
    os.killpg(job.status["pgid"], signal.SIGKILL)
    while time.time() < deadline and job.reload().state == "running":
        time.sleep(0.1)
    logged = job.progress()["step"]
    assert job.state == "failed" and "resume" in job.error
    assert "ft-lost" not in weights.available()
    resumed_from = torch.load(checkpoint, weights_only=True)["step"]  # the last checkpoint is whole
    assert 1 <= resumed_from <= logged < steps

    jobs.resume(job)
    deadline = time.time() + TIMEOUT  # the resumed run gets its own time, however long the first took
    while time.time() < deadline and job.reload().state in jobs.ACTIVE:
        time.sleep(0.2)
    assert job.state == "finished", job.error
    assert f"resuming ft-lost from step {resumed_from}" in (job.dir / "worker.log").read_text()
    assert [r["step"] for r in job.log()] == list(range(1, steps + 1))  # redone steps replace the lost ones
    model, card = weights.load("ft-lost")
    assert card["training"]["steps"] == steps
    img = images["im0"]
    assert get_codec("ft-lost").decode(get_codec("ft-lost").encode(img, 3.0)).shape == img.shape
