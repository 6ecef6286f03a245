"""Training: the loss goes down, a run resumes exactly, and torchrun (gloo) works."""
import json
import os
from pathlib import Path
import shutil
import socket
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import torch
from safetensors.torch import load_file

from aecore.models import ModelConfig, build_model
from aecore.train import TrainConfig, rd_loss, to_tensor, train

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def folder(tmp_path, photo):
    d = tmp_path / "images"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        crop = photo[rng.integers(0, 20):, rng.integers(0, 40):][:72, :80]
        Image.fromarray(np.ascontiguousarray(crop)).save(d / f"img{i}.png")
    return d


def _cfg(folder, tmp_path, **kw):
    settings = dict(model="hyperprior", out="t", steps=4, batch_size=2, crop=64, channels=8, latent_channels=12,
                    run_dir=str(tmp_path / "run"), weights_dir=str(tmp_path / "w"), val_every=2, log_every=1)
    return TrainConfig(data=str(folder), **{**settings, **kw})


@pytest.mark.parametrize("arch", ["hyperprior", "seed"])
def test_steps_lower_the_loss(arch, photo):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, channels=8, latent_channels=12)).train()
    x = to_tensor(np.stack([photo[:64, :64], photo[32:, 64:128]]))
    q = torch.tensor([2.0, 7.0])
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        torch.manual_seed(1)  # same noise each step: a clean comparison
        m = rd_loss(model, model(x, q), x, q)
        opt.zero_grad()
        m["loss"].backward()
        opt.step()
        losses.append(m["loss"].item())
    assert losses[-1] < 0.7 * losses[0]


def test_resume_is_exact(folder, tmp_path):
    train(_cfg(folder, tmp_path / "a", checkpoint_minutes=0))
    half = _cfg(folder, tmp_path / "b", checkpoint_minutes=0)
    half.steps = 2
    first = train(half)
    assert first["training"]["steps"] == 2
    resumed = train(_cfg(folder, tmp_path / "b", checkpoint_minutes=0))
    assert resumed["training"]["steps"] == 4
    a = load_file(str(tmp_path / "a" / "w" / "t.safetensors"))
    b = load_file(str(tmp_path / "b" / "w" / "t.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(l) for l in (tmp_path / "b" / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert {"loss", "bpp", "psnr", "lr", "seconds", "it_per_s"} <= set(log[0]) and "val" in log[1]
    card = json.loads((tmp_path / "b" / "w" / "t.json").read_text())
    assert card["config"]["arch"] == "hyperprior" and card["training"]["data"] == "images"


def test_a_new_lambda_ladder_reaches_the_card(folder, tmp_path):
    cfg = _cfg(folder, tmp_path, lambda_min=0.001, lambda_max=0.128)
    cfg.steps = 1
    card = train(cfg)
    lambdas = card["config"]["lambdas"]
    assert len(lambdas) == 8 and lambdas[0] == 0.001 and lambdas[-1] == 0.128
    assert np.allclose(np.diff(np.log(lambdas)), np.log(2))  # geometric: x2 per level


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun is not installed next to this Python")
def test_torchrun_two_processes_gloo(folder, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    with socket.socket() as probe:  # a free port: another run of the suite may be using any fixed one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [torchrun, "--nproc_per_node", "2", "--master_port", str(port), "-m", "aecore", "train",
           "--data", str(folder), "--model", "seed", "--out", "ddp", "--steps", "3", "--batch-size", "2",
           "--crop", "64", "--channels", "8", "--latent-channels", "12", "--threads", "1",
           "--run-dir", str(tmp_path / "run"), "--weights-dir", str(tmp_path / "w")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    card = json.loads((tmp_path / "w" / "ddp.json").read_text())
    assert card["training"]["steps"] == 3 and card["training"]["batch_size"] == 4


@pytest.mark.parametrize("low, high", [(0.001, 0.0), (0.0, 0.1), (0.1, 0.001), (-0.1, 0.1)])
def test_a_lambda_ladder_needs_both_ends_in_order(folder, tmp_path, low, high):
    with pytest.raises(ValueError, match="give both or neither|must be positive and below"):
        _cfg(folder, tmp_path, lambda_min=low, lambda_max=high)


class TickingClock:
    """A clock that moves TICK seconds each time it is read: training time without the machine's speed."""

    TICK = 0.125  # exact in binary, so budgets add up exactly

    def __init__(self):
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.reads * self.TICK


def test_a_time_budget_ends_the_run_and_drives_the_schedule(folder, tmp_path):
    budget = 1.875  # seconds: 15 steps of the clock's ticks (each step reads it once between t0 and now)
    cfg = _cfg(folder, tmp_path, minutes=budget / 60, warmup=0, decay_start=0.5, checkpoint_minutes=1e9,
               val_every=10**6)  # validated once: at the step the budget ends
    cfg.steps = 10**6
    card = train(cfg, clock=TickingClock())
    steps = card["training"]["steps"]
    assert steps == budget / TickingClock.TICK  # the budget ends the run, whatever the machine's speed
    log = [json.loads(l) for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == steps and "val" in log[-1]  # the last step is logged and validated
    assert [r["seconds"] for r in log] == [round(TickingClock.TICK * r["step"], 1) for r in log]
    lrs = [r["lr"] for r in log]
    assert lrs[0] == cfg.lr and lrs[-1] == pytest.approx(0.1 * cfg.lr, rel=0.1)  # decays on time, to lr/10
    assert lrs == sorted(lrs, reverse=True)


def test_schedules_follow_steps_or_time_whichever_is_further():
    from aecore.train import lr_at, rate_weight_at, run_fraction
    cfg = TrainConfig(data="x", steps=1000, minutes=10, warmup=0, decay_start=0.5, rate_warmup=0.2)
    assert run_fraction(cfg, 100, 0) == 0.1 and run_fraction(cfg, 100, 300) == 0.5
    assert run_fraction(cfg, 2000, 0) == 1.0
    assert lr_at(cfg, 0, 0) == cfg.lr and lr_at(cfg, 0, 600) == pytest.approx(cfg.lr / 10)
    assert lr_at(cfg, 750, 0) == pytest.approx(cfg.lr * 0.55)
    assert rate_weight_at(cfg, 0, 0) == pytest.approx(0.01)
    assert rate_weight_at(cfg, 100, 0) == pytest.approx(0.01 + 0.99 * 0.5)
    assert rate_weight_at(cfg, 0, 120) == 1.0  # 20% of the 10 minutes
    assert rate_weight_at(TrainConfig(data="x"), 0, 0) == 1.0


def test_the_rate_weight_scales_only_the_rate_term(photo):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="seed", channels=8, latent_channels=12)).eval()
    x = to_tensor(np.stack([photo[:64, :64]]))
    q = torch.tensor([3.0])
    out = model(x, q)
    full, tenth = rd_loss(model, out, x, q), rd_loss(model, out, x, q, rate_weight=0.1)
    lam = model.config.lambdas[2] * 255 ** 2
    assert tenth["loss"].item() == pytest.approx(0.1 * full["bpp"].item() + lam * full["mse"].item(), rel=1e-5)


@pytest.mark.parametrize("kw", [{"minutes": -1}, {"rate_warmup": 1.0}, {"rate_warmup": -0.1}, {"ms_ssim_weight": 1.5},
                                {"ms_ssim_weight": 0.1}])  # with 64 px crops
def test_a_time_budget_and_rate_warmup_must_make_sense(folder, tmp_path, kw):
    with pytest.raises(ValueError, match="--minutes must not be negative|--ms-ssim-weight (must lie|needs crops)"):
        _cfg(folder, tmp_path, **kw)


def test_the_device_is_chosen_or_named():
    from aecore.train import resolve_device
    assert resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_the_training_ms_ssim_matches_the_metric(photo):
    from aecore import metrics
    from aecore.distortion import ms_ssim
    rng = np.random.default_rng(1)
    a = np.ascontiguousarray(np.resize(photo, (176, 192, 3)))
    noisy = np.clip(a + rng.normal(0, 9, a.shape), 0, 255).astype(np.uint8)
    blurred = np.asarray(Image.fromarray(a).resize((48, 44)).resize((192, 176)))
    got = ms_ssim(to_tensor(np.stack([noisy, blurred])), to_tensor(np.stack([a, a])))
    want = [metrics.ms_ssim(a, noisy), metrics.ms_ssim(a, blurred)]
    assert got.tolist() == pytest.approx(want, abs=2e-5)


def test_an_ms_ssim_share_blends_the_distortion(photo):
    from aecore.distortion import MS_SSIM_TO_MSE, ms_ssim
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="seed", channels=8, latent_channels=12)).eval()
    x = to_tensor(np.stack([np.ascontiguousarray(np.resize(photo, (176, 176, 3)))]))
    q = torch.tensor([5.0])
    out = model(x, q)
    plain, blend = rd_loss(model, out, x, q), rd_loss(model, out, x, q, ms_ssim_weight=0.25)
    lam = model.config.lambdas[4] * 255 ** 2
    d = 0.75 * plain["mse"].item() + 0.25 * MS_SSIM_TO_MSE * (1 - ms_ssim(out["x_hat"], x).item())
    assert blend["loss"].item() == pytest.approx(plain["bpp"].item() + lam * d, rel=1e-5)
    assert blend["psnr"] == plain["psnr"]  # the reported PSNR stays the plain one


def test_crops_must_fit_the_models_stride(folder, tmp_path):
    with pytest.raises(ValueError, match="--crop must be a multiple of the hyperprior model's stride, 64; got 96"):
        train(_cfg(folder, tmp_path, crop=96))
