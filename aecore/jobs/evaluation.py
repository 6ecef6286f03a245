"""Evaluation and the card update: the base and the new weights on the held-out images."""
from __future__ import annotations

import math

from .. import io, weights
from .config import eval_qualities
from .store import Job


def evaluate(job: Job, progress=None) -> dict:
    """Rate-distortion of the base and the new weights on the hold-out images.

    Both are swept at the same learned qualities (`eval_qualities`); the curves are averaged
    over images (rd.average), and BD-rate is of the new weights against the base, by PSNR
    and by MS-SSIM (negative: the fine-tuned weights need fewer bits for the same quality).
    """
    from .. import rd

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


def update_card(job: Job, result: dict) -> None:
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


