"""Pictures for showing: scaled-down copies, error heatmaps, the inferno colour map and its bar.

    from aecore import imaging
    small = imaging.preview(pixels, 1600)                      # neither side above 1600 px
    vmax = imaging.error_scale(original, [a, b])               # one scale for every codec
    heat = imaging.error_map(original, a, vmax)                # uint8 RGB heatmap
    bar = imaging.error_legend(360, 14)

On the ground floor (numpy and OpenCV only), so the comparison, the model analysis, the
reports and the pages share one colour map and one way of shrinking. Loading and saving
files is `aecore.io`'s.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def colorize(unit: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (clipped) to uint8 RGB through OpenCV's inferno colour map (black 0, yellow 1)."""
    levels = np.rint(np.clip(unit, 0, 1) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def _abs_error(original: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """|original - decoded| per pixel in 0..255 levels, the mean over RGB for colour images."""
    err = np.abs(original.astype(np.int16) - decoded.astype(np.int16)).astype(np.float32)
    return err.mean(axis=2) if err.ndim == 3 else err


def error_map(original: np.ndarray, decoded: np.ndarray, vmax: float) -> np.ndarray:
    """Absolute error per pixel as a uint8 RGB (H, W, 3) heatmap.

    The error is the mean over RGB of |original - decoded| in 0..255 levels; black is
    exact and the brightest yellow is `vmax` levels or more. Pass the same `vmax` for
    every codec (see `error_scale`) so equal colours mean equal errors.
    """
    if original.shape != decoded.shape:
        raise ValueError(f"images differ in shape, {original.shape} vs {decoded.shape}")
    if not vmax > 0:
        raise ValueError(f"vmax must be positive, got {vmax}")
    return colorize(_abs_error(original, decoded) / float(vmax))


def error_scale(original: np.ndarray, decoded: list[np.ndarray], percentile: float = 99.0) -> float:
    """A shared colour-scale top for `error_map`: the worst codec's `percentile` error, rounded up.

    A percentile rather than the maximum, so a handful of outlier pixels do not turn every
    map black. At least 1 level, so a lossless result still has a scale.
    """
    top = 1.0
    for image in decoded:
        top = max(top, float(np.percentile(_abs_error(original, image), percentile)))
    return float(math.ceil(top))


def error_legend(width: int = 256, height: int = 14) -> np.ndarray:
    """The colour bar of `error_map` (and of `colorize`), from 0 (left) to vmax (right), as uint8 RGB."""
    ramp = np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1))
    return colorize(ramp)


def preview(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """`pixels` scaled down (area averaging) so neither side exceeds `max_side`; small images as is."""
    h, w = pixels.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return pixels
    return _resize(pixels, max(1, round(w * scale)), max(1, round(h * scale)))


def shrink_to_pixels(pixels: np.ndarray, max_pixels: int) -> np.ndarray:
    """`pixels` scaled down (area averaging) to at most `max_pixels` pixels; smaller images as is."""
    h, w = pixels.shape[:2]
    if h * w <= max_pixels:
        return pixels
    scale = math.sqrt(max_pixels / (h * w))
    return _resize(pixels, max(1, math.floor(w * scale)), max(1, math.floor(h * scale)))


def _resize(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.ascontiguousarray(cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA))
