"""Inside a learned codec: its latents at each resolution, and where the bits go.

    from aecore import latents
    from aecore.codecs import get_codec
    view = latents.analyse(get_codec("hyperprior").model, image, quality=4)
    view["bpp"]                                   # estimated from the model's likelihoods
    y = view["latents"][0]                        # {"name": "y", "factor": 16, "values": (C, h, w), ...}
    grid = latents.channel_grid(y["values"], 16)  # uint8 picture of the 16 costliest channels
    heat = latents.overlay(image, view["bits_map"])

The estimate is what the entropy coder pays in theory: -log2 of each coded integer's
likelihood under the model (the same likelihoods the training loss uses), summed. The real
stream differs by the coder's small overhead and the coding tables' rounding, a few percent.

Why: a learned codec has no 8x8 blocks. Its encoder turns the picture into feature maps
at 1/16 (y) and, for the hyperprior, 1/64 (z) of the size; the entropy model then spends
bits where those features are hard to predict (edges, texture), which the bits heatmap
shows. The seed model's encoder halves the size four times (max pooling); its
intermediate feature maps are returned too.

Everything here returns numpy arrays and plain dicts, so a page only lays them out.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from . import imaging, io
from .bitstream import quantize_quality
from .models.base import TILE, CompressionModel


@torch.inference_mode()
def analyse(model: CompressionModel, image: np.ndarray, quality: float) -> dict:
    """The latents of `image` at `quality`, each coded value's estimated bits, and a bits map.

    Returns a dict:
      arch, quality, height, width;
      latents: one dict per coded latent, finest first (y, then z for the hyperprior):
        name, factor (1/factor of the image size), values (C, h, w) float32 before rounding,
        coded (C, h, w) float32 after rounding (what the decoder gets, before the gain is undone),
        channels (original channel index of each row, costliest first), channel_bits (C,),
        bits (h, w) summed over channels, total_bits; channels are sorted by channel_bits;
      features: the seed encoder's maps after each max-pooling stage (name, factor,
        values (C, h, w), channels sorted by mean activation); empty for the hyperprior;
      bits_map: (height, width) estimated bits per pixel, a coarser latent's bits spread evenly over
        the finest latent's positions it covers (z over 4x4 of y);
      total_bits, bpp: the estimate for the coded payload (no container header);
      quantization: one channel (the costliest of y) before and after rounding.
    """
    q = quantize_quality(float(quality))
    rgb = io.to_rgb(image)
    height, width = rgb.shape[:2]
    x = torch.tensor(rgb).permute(2, 0, 1)[None].float().div(255)
    x = model.pad(x)                                                  # (1, 3, H', W'), H' % stride == 0

    # What the page needs comes back from the analysis itself: nothing is recorded on the model,
    # whose coding copies every session's encodes share.
    a = model.analyse(x, q, stages=True)
    found = [_latent(lat) for lat in sorted(a.latents, key=lambda lat: lat.factor)]

    # Bits per block of the finest latent: its own, plus each coarser value's bits shared by the
    # positions it covers.
    finest = found[0]["factor"]
    block_bits = found[0]["bits"].astype(np.float64)
    for lat in found[1:]:
        k = lat["factor"] // finest
        spread = np.kron(lat["bits"], np.ones((k, k))) / (k * k)
        block_bits = block_bits + spread[:block_bits.shape[0], :block_bits.shape[1]]
    total_bits = float(sum(lat["total_bits"] for lat in found))

    y = found[0]
    top = int(y["channels"][0])
    return {
        "arch": getattr(model, "arch", type(model).__name__),
        "quality": q,
        "height": height,
        "width": width,
        "latents": found,
        "features": _features(a.stages),
        "bits_map": _bits_map(block_bits, finest, height, width),
        "total_bits": total_bits,
        "bpp": total_bits / (height * width),
        "quantization": {"latent": "y", "channel": top, "before": y["values"][0].copy(),
                         "after": y["coded"][0].copy()},
    }


def _latent(latent) -> dict:
    """One latent's arrays (a models.base.Latent) with channels sorted by bits, costliest first."""
    bits = (-torch.log2(latent.likelihoods()))[0].double().numpy()    # (C, h, w)
    channel_bits = bits.sum(axis=(1, 2))
    order = np.argsort(-channel_bits, kind="stable")
    return {"name": latent.name, "factor": latent.factor,
            "values": latent.values[0].float().numpy()[order], "coded": latent.coded()[0].float().numpy()[order],
            "channels": order, "channel_bits": channel_bits[order],
            "bits": bits.sum(axis=0), "total_bits": float(channel_bits.sum())}


def _features(stages: list[torch.Tensor]) -> list[dict]:
    """The pooling stages' maps (none when the transform ran in tiles, larger than TILE)."""
    out = []
    for i, maps in enumerate(stages):
        values = maps[0].float().numpy()                               # (C, H/2^k, W/2^k)
        order = np.argsort(-np.abs(values).mean(axis=(1, 2)), kind="stable")
        out.append({"name": f"after pooling {i + 1}", "factor": 2 ** (i + 1), "values": values[order],
                    "channels": order})
    return out


def _bits_map(block_bits: np.ndarray, factor: int, height: int, width: int) -> np.ndarray:
    """Bits per factor x factor block -> bits per pixel at image size (smooth upsampling, then cropped)."""
    per_pixel = (block_bits / factor ** 2).astype(np.float32)
    h, w = per_pixel.shape
    up = cv2.resize(per_pixel, (w * factor, h * factor), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(np.clip(up[:height, :width], 0, None))


def channel_grid(maps: np.ndarray, n: int = 16, normalize: bool = True, columns: int | None = None,
                 min_tile: int = 64, gap: int = 2, signed: bool | None = None) -> np.ndarray:
    """The first `n` channels of `maps` (C, h, w) side by side: a uint8 grayscale picture.

    normalize=True scales each tile by its own largest magnitude (every channel's pattern
    shows); False uses one scale for all (their relative strength shows). Signed maps
    (latents) put zero at mid-gray; unsigned ones (feature maps after ReLU) run from black;
    `signed=None` decides from the values. Small tiles are enlarged by a whole factor
    (nearest neighbour) to at least `min_tile` pixels, so the browser does not blur them;
    tiles are separated by `gap` white pixels.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f"expected maps of shape (C, h, w) with C >= 1, got {maps.shape}")
    maps = maps[:max(1, n)]
    c, h, w = maps.shape
    cols = columns or int(math.ceil(math.sqrt(c)))
    rows = int(math.ceil(c / cols))
    signed = bool((maps < 0).any()) if signed is None else signed
    mags = np.abs(maps).reshape(c, -1).max(axis=1) if normalize else np.full(c, np.abs(maps).max())
    mags = np.where(mags > 0, mags, 1.0)[:, None, None]
    unit = maps / mags * 0.5 + 0.5 if signed else maps / mags           # 0..1
    tiles = np.rint(np.clip(unit, 0, 1) * 255).astype(np.uint8)
    k = max(1, int(math.ceil(min_tile / max(h, w))))
    if k > 1:
        tiles = tiles.repeat(k, axis=1).repeat(k, axis=2)
    th, tw = h * k, w * k
    grid = np.full((rows * th + (rows - 1) * gap, cols * tw + (cols - 1) * gap), 255, np.uint8)
    for i in range(c):
        r, col = divmod(i, cols)
        grid[r * (th + gap):r * (th + gap) + th, col * (tw + gap):col * (tw + gap) + tw] = tiles[i]
    return grid


def _heat(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Non-negative values -> inferno RGB, yellow at `vmax` and above; vmax defaults to the 99th
    percentile, so a few extreme values do not wash out the rest."""
    values = np.asarray(values, dtype=np.float32)
    if vmax is None:
        vmax = float(np.percentile(values, 99)) if values.size else 1.0
    return imaging.colorize(values / (vmax if vmax > 0 else 1.0))


def overlay(image: np.ndarray, bits_map: np.ndarray, alpha: float = 0.6, vmax: float | None = None) -> np.ndarray:
    """The bits heatmap blended over a gray copy of the photo (uint8 RGB, the photo's size).

    The photo is shown in gray so that the colours are the heatmap's alone.
    """
    rgb = io.to_rgb(image)
    if bits_map.shape != rgb.shape[:2]:
        raise ValueError(f"bits map {bits_map.shape} does not match the image {rgb.shape[:2]}")
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    photo = np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    heat = _heat(bits_map, vmax).astype(np.float32)
    return np.rint(photo * (1 - alpha) + heat * alpha).clip(0, 255).astype(np.uint8)


def fits(image: np.ndarray) -> bool:
    """Whether the analysis runs in one piece (no tiles), so the pooling feature maps are kept."""
    return max(image.shape[:2]) <= TILE
