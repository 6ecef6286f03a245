"""Encode effort: the latents refined for the image's own rate-distortion loss, decoder unchanged.

    from aecore import refine
    r = refine.refine(model, x, quality=4, schedule=refine.schedule(model, "best"),
                      progress=lambda done, total: ..., cancel=threading.Event())
    r.sections          # the payload, coded exactly as `model.compress` codes its latents
    r.x_hat             # what the unchanged decoder will reconstruct from those bytes

The analysis transform is trained to be good on average; for one image, gradient descent on
its latents (y and, for the hyperprior, z) lowers that image's bpp + lambda * 255^2 * D
further, with the quality's own lambda (interpolated like the gain units for a continuous
quality) and D the distortion the model was trained on (`aecore.distortion`: the shipped
hyperprior's is 0.75 MSE + 0.25 (1 - MS-SSIM) / 45; MSE alone made its MS-SSIM worse). The decoder, the entropy tables and the stream format stay as they are, so a
refined stream decodes with today's `decompress`, bit-exactly.

Rounding has no gradient, so the loop rounds softly: stochastic Gumbel annealing (Yang,
Bamler & Mandt 2020, "Improving Inference for Neural Image Compression"), a relaxed random
choice between floor and ceiling whose temperature falls towards hard rounding. Both the
rate and the reconstruction see the soft values, the synthesis runs the bfloat16 coding
copy (float32 on CPUs without fast bfloat16) with gradients flowing through it, and Adam
moves the latents. Straight-through rounding with Adam, and additive noise, were measured
worse. The bytes never reuse the
loop's soft values: the final latents go through `compress`, which rounds z and recomputes
the means and scale indexes from it. The result is never worse than the plain encode by the
model's own estimate: if the refined latents lose to the analysis transform's, those are coded.

Cancelling (`cancel.is_set()`, checked every iteration) raises `Cancelled`; nothing is
coded, and the caller decides whether to fall back to the fast encode (the Compare page
keeps its previous result).
"""
from __future__ import annotations

from dataclasses import dataclass
import math
import time

import torch

from .codecs.base import EFFORTS, check_effort  # noqa: F401  (EFFORTS: re-exported)
from .distortion import distortion
from .models.base import CompressionModel, quality_lambda
from .models.entropy import fixed_threads
from .models.precision import compute_dtype


class Cancelled(Exception):
    """The refinement was cancelled before it finished (nothing was coded)."""


@dataclass(frozen=True)
class Schedule:
    """`iterations` Adam steps at `lr`; the soft-rounding temperature falls from `tau_start` by
    `anneal` e-folds over the whole schedule, tau_start * exp(-anneal * t / iterations): a short
    schedule anneals as far as a long one (40 iterations annealed so gain -4.7% by PSNR on the
    hyperprior, where the first 40 of a 380-iteration schedule gain -1.9%)."""
    iterations: int
    anneal: float = 1.52
    lr: float = 0.01
    tau_start: float = 0.5
    ms_ssim_weight: float = 0.0   # MS-SSIM's share of the distortion (the model's training blend)

    def temperature(self, t: int) -> float:
        return self.tau_start * math.exp(-self.anneal * t / max(1, self.iterations))


# The presets' rule (`choose_presets`, run by benchmarks/effort.py on the measured curve of
# seconds per 768x512 image against BD-rate over the fast encoder): each effort takes the
# iteration count with the best BD-rate by PSNR among those within its time budget on 2 free
# cores, or the fewest iterations within GAIN_TOLERANCE points of that (a flat curve buys
# nothing). The seconds are those of a quiet machine (ITERATION_SECONDS): a busy one's are
# several times longer. Measured on 2 whole Kodak images at qualities 1, 3, 5, 8 on the quiet
# 2 cores (benchmarks/results/effort.json, effort_seed.json): the hyperprior, refined for its
# training blend, 28 iterations -2.7% by PSNR and -3.3% by MS-SSIM, 260 -8.5% and -9.9% (9.5
# and 81.7 s), so balanced 28, best 260 (for MSE alone 40 and 380 iterations gave -4.7% and
# -10.2% by PSNR but +2.3% and +3.3% by MS-SSIM, effort_mse.json); the seed 25 iterations
# -32.4%, 240 -65.1% (9.3 and 81.9 s; its weak analysis transform leaves the most to refine),
# so balanced 25, best 240.
BUDGET_SECONDS = {"balanced": 10.0, "best": 90.0}
GAIN_TOLERANCE = 0.5
# Each refines for the distortion its architecture's shipped weights were trained on (their
# card's training.ms_ssim_weight).
PRESETS: dict[str, dict[str, Schedule]] = {
    "hyperprior": {"balanced": Schedule(28, ms_ssim_weight=0.25), "best": Schedule(260, ms_ssim_weight=0.25)},
    "seed": {"balanced": Schedule(25), "best": Schedule(240)},
    "seed-hyperprior": {"balanced": Schedule(25), "best": Schedule(240)},
}
# Seconds per refinement iteration per megapixel on 2 free cores (the same runs: 0.31 s per
# 768x512 iteration for the hyperprior with its MS-SSIM term, 0.23 s without it, 0.34-0.37 s
# for the seed, whose synthesis is costlier), for an expected time before the refinement starts.
ITERATION_SECONDS = {"hyperprior": 0.8, "seed": 0.95, "seed-hyperprior": 0.95}
# The same on CPUs without fast bfloat16 kernels, where the loop runs float32 (an AVX2 AMD EPYC:
# 0.88 s per 768x512 iteration for the hyperprior without its MS-SSIM term, 1.93 s for the seed,
# on 2 quiet cores; the hyperprior's adds the MS-SSIM term's float32 cost measured here, 0.085 s).
ITERATION_SECONDS_FLOAT32 = {"hyperprior": 2.45, "seed": 4.9, "seed-hyperprior": 4.9}


def choose_presets(curve: list[dict], seconds: str = "seconds_per_image") -> dict[str, int]:
    """{effort: iterations} from rows {"iterations", `seconds`, "bd_rate_psnr"} by the rule above."""
    chosen = {}
    for effort, budget in BUDGET_SECONDS.items():
        within = [c for c in curve if c[seconds] <= budget] or [min(curve, key=lambda c: c["iterations"])]
        best = min(c["bd_rate_psnr"] for c in within)
        chosen[effort] = min(c["iterations"] for c in within if c["bd_rate_psnr"] <= best + GAIN_TOLERANCE)
    return chosen


def schedule(model: CompressionModel, effort: str, presets: dict | None = None) -> Schedule | None:
    """The preset for `effort` on this architecture; None for "fast" (no refinement).
    `presets` ({effort: Schedule}) overrides PRESETS for the efforts it names (tests pass a
    few iterations explicitly)."""
    if check_effort(effort) == "fast":
        return None
    if presets and effort in presets:
        return presets[effort]
    return PRESETS.get(model.arch, PRESETS["hyperprior"])[effort]


def expected_seconds(model: CompressionModel, effort: str, height: int, width: int,
                     presets: dict | None = None) -> float:
    """About how long the refinement of an image this size takes on 2 free cores (0 for fast)."""
    plan = schedule(model, effort, presets)
    if plan is None:
        return 0.0
    table = ITERATION_SECONDS if compute_dtype() == torch.bfloat16 else ITERATION_SECONDS_FLOAT32
    per_it = table.get(model.arch, max(table.values()))
    return plan.iterations * per_it * height * width / 1e6


def soft_round(v: torch.Tensor, tau: float, generator: torch.Generator) -> torch.Tensor:
    """Stochastic Gumbel annealing: floor(v) + a relaxed one-hot sample over {floor, ceil}
    whose logits are -atanh(distance) / tau; hard rounding as tau -> 0 (Yang et al. 2020)."""
    floor = torch.floor(v.detach())
    frac = v - floor
    eps = 1e-5
    to_floor = -torch.atanh(frac.clamp(eps, 1 - eps)) / tau
    to_ceil = -torch.atanh((1 - frac).clamp(eps, 1 - eps)) / tau
    u = torch.rand(v.shape, generator=generator).clamp_(1e-6, 1 - 1e-6)
    logistic = torch.log(u) - torch.log1p(-u)             # difference of two Gumbel samples
    return floor + torch.sigmoid((to_ceil - to_floor + logistic) / tau)


@dataclass
class Refined:
    sections: list[bytes]            # the coded payload, as model.compress writes it
    x_hat: torch.Tensor              # (1, 3, h, w) float: the decoder's reconstruction of `sections`
    latents: dict                    # the unrounded latents that were coded
    loss: float                      # bpp + lambda * 255^2 * distortion of the coded latents (model's estimate)
    fast_loss: float                 # the same for the analysis transform's latents
    iterations: int
    seconds: float


def rd_loss(model: CompressionModel, x: torch.Tensor, quality: float, latents: dict, rounding,
            dtype: torch.dtype | None = None, ms_ssim_weight: float = 0.0) -> tuple:
    """(loss tensor, padded reconstruction): bpp + lambda * 255^2 * distortion over the image's
    own pixels, the synthesis in `dtype` (the decoder's own; by default the loop's, bfloat16
    where the CPU runs it fast, see `precision.compute_dtype`)."""
    h, w = x.shape[-2:]
    bits, x_hat = model.relaxed(latents, quality, rounding, dtype or compute_dtype())
    d = distortion(x_hat[..., :h, :w].float(), x, ms_ssim_weight)[0]
    return bits / (h * w) + quality_lambda(model.config.lambdas, quality) * 255 ** 2 * d, x_hat


def refine(model: CompressionModel, x: torch.Tensor, quality: float, schedule: Schedule,
           progress=None, cancel=None, seed: int = 0) -> Refined:
    """Refines, then codes, the latents of one image x (1, 3, h, w) in [0, 1] at `quality`.

    `progress(done, total)` is called after every iteration; `cancel` is anything with
    `is_set()` (a threading.Event) and raises `Cancelled` once set. `seed` fixes the
    annealing's noise, so a refinement is reproducible.
    """
    t0 = time.perf_counter()
    start = analysed(model, x, quality)
    names = model.coded_latents
    latents = {k: start[k].clone().requires_grad_(True) for k in names}
    optimizer = torch.optim.Adam(latents.values(), lr=schedule.lr)
    generator = torch.Generator().manual_seed(seed)
    for t in range(schedule.iterations):
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"refinement cancelled after {t} of {schedule.iterations} iterations")
        tau = schedule.temperature(t)
        loss, _ = rd_loss(model, x, quality, latents, lambda v: soft_round(v, tau, generator),
                          ms_ssim_weight=schedule.ms_ssim_weight)
        grads = torch.autograd.grad(loss, list(latents.values()))
        for v, g in zip(latents.values(), grads):
            v.grad = g
        optimizer.step()
        if progress is not None:
            progress(t + 1, schedule.iterations)
    refined = {k: v.detach() for k, v in latents.items()}
    fast = start
    best, loss, x_hat, fast_loss = better(model, x, quality, refined, fast, schedule.ms_ssim_weight)
    return Refined(sections=model.compress(x, quality, latents=best), x_hat=x_hat[..., :x.shape[-2], :x.shape[-1]],
                   latents=best, loss=loss, fast_loss=fast_loss, iterations=schedule.iterations,
                   seconds=time.perf_counter() - t0)


def analysed(model: CompressionModel, x: torch.Tensor, quality: float) -> dict:
    """{name: unrounded latent} of the analysis transforms (the fast encoder's), for each coded latent."""
    with fixed_threads(), torch.inference_mode():
        found = {lat.name: lat.values for lat in model.analyse(model.pad(x), quality).latents}
    return {k: found[k] for k in model.coded_latents}


def predict(model: CompressionModel, x: torch.Tensor, quality: float, latents: dict,
            ms_ssim_weight: float = 0.0) -> tuple[float, torch.Tensor]:
    """(estimated loss, padded reconstruction) of hard-rounded latents: the reconstruction is
    computed the way `decompress` computes it, on the coding thread count."""
    with fixed_threads(), torch.inference_mode():
        loss, x_hat = rd_loss(model, x, quality, latents, torch.round, model.decode_dtype, ms_ssim_weight)
    return float(loss), x_hat


def better(model: CompressionModel, x: torch.Tensor, quality: float, refined: dict, fast: dict,
           ms_ssim_weight: float = 0.0) -> tuple:
    """(latents, loss, padded reconstruction, fast loss): the refined latents, or the analysis
    transform's where those have the lower estimated loss (what `refine` codes)."""
    loss, x_hat = predict(model, x, quality, refined, ms_ssim_weight)
    fast_loss, fast_hat = predict(model, x, quality, fast, ms_ssim_weight)
    if fast_loss < loss:
        return fast, fast_loss, fast_hat, fast_loss
    return refined, loss, x_hat, fast_loss
