"""Training and fine-tuning: rate-distortion loss, crops from a folder, exact resume.

    python -m aecore train --data ../shared/data/train --model hyperprior --out hyperprior
    torchrun --nproc_per_node 2 -m aecore train --data DIR --model seed --out seed

Each step draws a quality level per crop and minimises bpp + lambda * 255^2 * MSE
(the variable-rate objective of Cui et al. 2021). Transforms run in bfloat16 autocast
with channels_last, on a GPU when there is one (on CPUs with AMX bf16 is about 3.5x
faster than float32; on CPUs without fast bfloat16 kernels they run float32, see
`models.precision`); likelihoods stay float32. A checkpoint (model, optimizer, step,
RNG) is written every few minutes and on Ctrl-C/SIGTERM; rerunning the same command
resumes (exactly on CPU; GPU convolutions are not bitwise reproducible). `--minutes`
bounds a run by time instead of steps.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import os
from pathlib import Path
import signal
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

from . import weights as weights_mod
from .io import load_image_folder
from .distortion import MS_SSIM_MIN_SIDE, distortion
from .models import CompressionModel, ModelConfig, build_model, lambda_ladder



@dataclass
class TrainConfig:
    data: str                                 # folder of training images
    model: str = "hyperprior"                 # architecture of a new model (seed-hyperprior with --init
                                              # seed: the seed's transforms with a new hyperprior)
    out: str = "hyperprior"                   # weights name to export
    init: str | None = None                   # start from these named weights instead of scratch
    steps: int = 20000                        # training steps of the whole run
    batch_size: int = 8                       # crops per step
    crop: int = 128                           # small crops buy the most progress per CPU-hour early on
    lr: float = 3e-4                          # peak learning rate of the transforms
    rate_lr_scale: float = 10.0               # densities and gains learn this much faster: at 1x they
                                              # need tens of thousands of steps to leave their init
    warmup: int = 200                         # steps over which lr rises linearly to its peak
    decay_start: float = 0.75                 # fraction of steps after which lr falls linearly to lr/10
    val_fraction: float = 0.03                # images held out for validation (fixed crops)
    val_data: str | None = None               # folder of validation images; when set, all of data trains
    val_every: int = 500                      # steps between validations
    log_every: int = 25                       # steps between progress lines
    checkpoint_minutes: float = 5.0           # a killed run loses at most this much work
    run_dir: str | None = None                # checkpoints and log; default ~/.cache/aecore/runs/OUT
    weights_dir: str = str(weights_mod.SHIPPED_DIR)  # where the exported weights go
    threads: int = 0                          # torch threads (0 = library default)
    seed: int = 0                             # crops, validation split and noise
    quality_min: int = 1                      # range of quality levels drawn per crop
    quality_max: int = 0                      # 0 = the model's top level
    channels: int = 128                       # a new model's feature channels
    latent_channels: int = 192                # a new model's latent channels
    depth: int = 1                            # seed: convolutions per resolution stage
    lambda_min: float = 0.0                   # with lambda_max: a new geometric lambda ladder
    lambda_max: float = 0.0                   # for the quality levels (0 = keep the model's)
    levels: int = 0                           # with --init: extend the ladder at its top to this many
                                              # levels (0 = keep the model's)
    minutes: float = 0.0                      # stop after this much training time (0 = no limit); the
                                              # lr schedule then follows time or steps, whichever is further
    rate_warmup: float = 0.0                  # fraction of the run over which the rate term's weight rises
                                              # from 1% to 100%: transforms learn to use the latent first
    device: str = "auto"                      # "cpu", "cuda", "cuda:1"...; auto = a GPU when there is one
    ms_ssim_weight: float = 0.0               # share of the distortion measured by MS-SSIM instead of MSE

    def __post_init__(self):
        if bool(self.lambda_min) != bool(self.lambda_max):
            raise ValueError("--lambda-min and --lambda-max make a new lambda ladder together: give both or neither")
        if self.lambda_min and not 0 < self.lambda_min < self.lambda_max:
            raise ValueError(f"--lambda-min ({self.lambda_min:g}) must be positive and below --lambda-max "
                             f"({self.lambda_max:g})")
        if not 0 <= self.ms_ssim_weight <= 1:
            raise ValueError(f"--ms-ssim-weight must lie in [0, 1], got {self.ms_ssim_weight:g}")
        if self.ms_ssim_weight and self.crop < MS_SSIM_MIN_SIDE:
            raise ValueError(f"--ms-ssim-weight needs crops of at least {MS_SSIM_MIN_SIDE} px (MS-SSIM's five "
                             f"scales), got --crop {self.crop}")
        if self.minutes < 0 or not 0 <= self.rate_warmup < 1:
            raise ValueError("--minutes must not be negative and --rate-warmup must lie in [0, 1)")


def run_fraction(cfg: TrainConfig, step: int, elapsed: float = 0.0) -> float:
    """How far the run is, 0..1: by steps, or by time when that is further along."""
    done = step / cfg.steps
    return min(1.0, max(done, elapsed / (60 * cfg.minutes)) if cfg.minutes else done)


def new_model_config(cfg: TrainConfig) -> ModelConfig:
    return ModelConfig(arch=cfg.model, channels=cfg.channels, latent_channels=cfg.latent_channels, depth=cfg.depth)


def lr_at(cfg: TrainConfig, step: int, elapsed: float = 0.0) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    done = run_fraction(cfg, step, elapsed)
    if done < cfg.decay_start:
        return cfg.lr
    frac = min(1.0, (done - cfg.decay_start) / max(1e-9, 1 - cfg.decay_start))
    return cfg.lr * (1 - 0.9 * frac)


def rate_weight_at(cfg: TrainConfig, step: int, elapsed: float = 0.0) -> float:
    if not cfg.rate_warmup:
        return 1.0
    return min(1.0, 0.01 + 0.99 * run_fraction(cfg, step, elapsed) / cfg.rate_warmup)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


class Crops:
    """Random crops with flips from images held in memory (uint8, HxWx3)."""

    def __init__(self, images: list[np.ndarray], crop: int, rng: np.random.Generator):
        self.images = [self._ensure_size(im, crop) for im in images]
        self.crop = crop
        self.rng = rng

    @staticmethod
    def _ensure_size(im: np.ndarray, crop: int) -> np.ndarray:
        h, w = im.shape[:2]
        if h >= crop and w >= crop:
            return im
        return np.pad(im, ((0, max(0, crop - h)), (0, max(0, crop - w)), (0, 0)), mode="reflect")

    def batch(self, size: int) -> torch.Tensor:
        out = np.empty((size, self.crop, self.crop, 3), dtype=np.uint8)
        for i in range(size):
            im = self.images[self.rng.integers(len(self.images))]
            y = self.rng.integers(im.shape[0] - self.crop + 1)
            x = self.rng.integers(im.shape[1] - self.crop + 1)
            patch = im[y:y + self.crop, x:x + self.crop]
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            if self.rng.random() < 0.5:
                patch = patch[::-1]
            out[i] = patch
        return to_tensor(out)


def to_tensor(batch: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1], channels_last."""
    t = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div_(255)
    return t.contiguous(memory_format=torch.channels_last)


def center_crops(images: list[np.ndarray], size: int) -> torch.Tensor:
    crops = []
    for im in images:
        im = Crops._ensure_size(im, size)
        y, x = (im.shape[0] - size) // 2, (im.shape[1] - size) // 2
        crops.append(im[y:y + size, x:x + size])
    return to_tensor(np.stack(crops))


def rd_loss(model: CompressionModel, out: dict, x: torch.Tensor, quality: torch.Tensor,
            rate_weight: float = 1.0, ms_ssim_weight: float = 0.0) -> dict:
    """Per-crop bpp and distortion, weighted by each crop's lambda; returns means.

    The distortion is the MSE, or with `ms_ssim_weight` a blend with (1 - MS-SSIM) brought
    to the MSE's scale (MS_SSIM_TO_MSE), so one lambda ladder serves both.
    """
    pixels = x.shape[2] * x.shape[3]
    bits = sum(-torch.log2(l).flatten(1).sum(1) for l in out["likelihoods"].values())
    bpp = bits / pixels
    mse = (out["x_hat"] - x).pow(2).flatten(1).mean(1)
    d = distortion(out["x_hat"], x, ms_ssim_weight)
    lam = torch.tensor(model.config.lambdas, dtype=torch.float32, device=x.device)[quality.long() - 1]
    loss = (rate_weight * bpp + lam * 255 ** 2 * d).mean()
    psnr = (10 * torch.log10(1 / mse.detach().clamp_min(1e-10))).mean()
    return {"loss": loss, "bpp": bpp.mean(), "mse": mse.mean(), "psnr": psnr}


@torch.no_grad()
def validate(model: CompressionModel, crops: torch.Tensor, levels: tuple[int, ...] | None = None) -> dict:
    """bpp (from rounded latents' likelihoods) and PSNR at a few levels on fixed crops (default:
    the lowest, the middle and the top of the model's levels)."""
    levels = levels or (1, model.levels // 2, model.levels)
    was_training = model.training
    model.eval()
    result = {}
    for level in levels:
        q = torch.full((crops.shape[0],), float(level), device=crops.device)
        m = rd_loss(model, model(crops, q), crops, q)
        result[f"q{level}"] = {"bpp": round(m["bpp"].item(), 4), "psnr": round(m["psnr"].item(), 3),
                               "loss": round(m["loss"].item(), 4)}
    model.train(was_training)
    return result


def _dist_setup() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def default_run_dir(name: str) -> Path:
    return Path.home() / ".cache" / "aecore" / "runs" / name


def _card(cfg: TrainConfig, step: int, elapsed: float, world: int, levels: int, val, init_name) -> dict:
    return {"training": {"data": Path(cfg.data).name, "steps": step, "crop": cfg.crop,
                         "batch_size": cfg.batch_size * world, "lr": cfg.lr, "hours": round(elapsed / 3600, 2),
                         "init": init_name, "ms_ssim_weight": cfg.ms_ssim_weight, "validation": val},
            "quality_range": [1, levels]}


def export_checkpoint(run_dir, name: str, weights_dir) -> dict:
    """Exports a run's latest checkpoint as named weights (the run may still be going)."""
    state = torch.load(Path(run_dir) / "checkpoint.pt", weights_only=True, map_location="cpu")
    cfg = TrainConfig(**state["config"])
    config = ModelConfig.from_dict(state["model_config"]) if "model_config" in state else new_model_config(cfg)
    model = build_model(config)
    model.load_state_dict(state["model"])
    card = _card(cfg, state["step"], state["elapsed"], 1, model.levels, state.get("last_val"), cfg.init)
    return weights_mod.save(model, name, Path(weights_dir), card)


def train(cfg: TrainConfig, progress=None, clock=time.monotonic) -> dict:
    """Runs (or resumes) training; exports weights and returns the final card.

    `clock` (seconds) measures the training time that `--minutes`, the schedules and the
    checkpoint interval follow; tests pass a clock of their own, so no result depends on speed.
    """
    rank, world = _dist_setup()
    device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run_dir = Path(cfg.run_dir or default_run_dir(cfg.out))
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"
    log_path = run_dir / "log.jsonl"

    torch.manual_seed(cfg.seed)  # same initial weights on every rank and every fresh run
    if cfg.init:
        model, init_card = weights_mod.load(cfg.init)
        if model.config.depth < cfg.depth and hasattr(model, "deepened"):
            model = model.deepened(cfg.depth)  # the same function, room to learn more
        if model.arch == "seed" and cfg.model == "seed-hyperprior":
            model = model.with_hyperprior()  # the trained transforms, a new entropy model for their latent
        if cfg.levels and cfg.levels != model.levels:
            model = model.extended(cfg.levels)  # a higher top quality, the trained levels kept
        model.train()
    else:
        model = build_model(new_model_config(cfg))
        init_card = None
    if cfg.crop % model.stride:
        raise ValueError(f"--crop must be a multiple of the {model.config.arch} model's stride, {model.stride}; "
                         f"got {cfg.crop}")
    images = load_image_folder(cfg.data)
    if cfg.val_data:
        val_images, train_images = load_image_folder(cfg.val_data), images
    else:
        n_val = max(1, int(round(len(images) * cfg.val_fraction))) if len(images) > 1 else 0
        val_images, train_images = images[:n_val], images[n_val:] or images
    val_crops = center_crops(val_images, 256).to(device) if val_images else None

    if cfg.lambda_min and cfg.lambda_max:
        model.config.lambdas = lambda_ladder(cfg.lambda_min, cfg.lambda_max, model.levels)
    model = model.to(device, memory_format=torch.channels_last)
    fast = {id(p) for p in model.rate_parameters()}
    optimizer = torch.optim.Adam([
        {"params": [p for p in model.parameters() if id(p) not in fast], "scale": 1.0},
        {"params": [p for p in model.parameters() if id(p) in fast], "scale": cfg.rate_lr_scale}], lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed + rank)
    torch.manual_seed(cfg.seed + 1000 * rank)
    step, elapsed, last_val = 0, 0.0, None

    if ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=True, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed = state["step"], state["elapsed"]
        torch.set_rng_state(state["torch_rng"].cpu())
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)
        rng.bit_generator.state = json.loads(state["numpy_rng"])
        last_val = state.get("last_val")
        if world > 1:  # each rank needs its own stream of crops and noise
            rng = np.random.default_rng([cfg.seed, rank, step])
            torch.manual_seed(cfg.seed + 1000 * rank + step)
        print(f"resuming {cfg.out} from step {step}", file=sys.stderr)

    net = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device] if device.type == "cuda" else None) if world > 1 else model
    data = Crops(train_images, cfg.crop, rng)
    q_min, q_max = max(1, cfg.quality_min), min(model.levels, cfg.quality_max or model.levels)

    def checkpoint():
        if rank == 0:
            extra = {"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}
            _atomic_save({**extra, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                          "elapsed": elapsed, "torch_rng": torch.get_rng_state(),
                          "numpy_rng": json.dumps(rng.bit_generator.state), "last_val": last_val,
                          "config": asdict(cfg), "model_config": model.config.to_dict()}, ckpt_path)

    stop = {"now": False}
    previous = signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    model.train()
    last_ckpt = clock()
    t0, window = clock(), []
    try:
        while run_fraction(cfg, step, elapsed) < 1 and not stop["now"]:
            for g in optimizer.param_groups:
                g["lr"] = lr_at(cfg, step, elapsed) * g["scale"]
            x = data.batch(cfg.batch_size).to(device, non_blocking=True)
            quality = torch.from_numpy(rng.integers(q_min, q_max + 1, cfg.batch_size)).float().to(device)
            m = rd_loss(model, net(x, quality), x, quality, rate_weight_at(cfg, step, elapsed), cfg.ms_ssim_weight)
            optimizer.zero_grad(set_to_none=True)
            m["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            now = clock()
            elapsed += now - t0
            window.append(now - t0)
            t0 = now
            final = run_fraction(cfg, step, elapsed) >= 1
            if rank == 0 and (step % cfg.log_every == 0 or final):
                rec = {"step": step, "loss": round(m["loss"].item(), 4), "bpp": round(m["bpp"].item(), 4),
                       "psnr": round(m["psnr"].item(), 3), "lr": lr_at(cfg, step - 1, elapsed),
                       "seconds": round(elapsed, 1), "it_per_s": round(len(window) / sum(window), 3)}
                window = []
                if cfg.rate_warmup:
                    rec["rate_weight"] = round(rate_weight_at(cfg, step - 1, elapsed), 4)
                if val_crops is not None and (step % cfg.val_every == 0 or final):
                    rec["val"] = validate(model, val_crops)
                    last_val = rec["val"]
                with open(log_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                if progress:
                    progress(rec, cfg.steps)
            if clock() - last_ckpt > cfg.checkpoint_minutes * 60:
                checkpoint()
                last_ckpt = clock()
            t0 = clock()
    except KeyboardInterrupt:
        stop["now"] = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        checkpoint()
    if world > 1:
        dist.destroy_process_group()
    if stop["now"] or rank != 0:
        return {}
    card = _card(cfg, step, elapsed, world, model.levels, last_val, cfg.init or (init_card or {}).get("name"))
    return weights_mod.save(model.to(memory_format=torch.contiguous_format), cfg.out, Path(cfg.weights_dir), card)
