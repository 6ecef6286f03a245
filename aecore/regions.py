"""Where two decodings of one image differ most: the crop worth zooming into.

    box = worst_region(original, learned, jpeg, size=128)   # where JPEG's error most exceeds ours
    grid = block_grid_region(learned, jpeg, size=128)        # where JPEG's 8x8 grid shows and ours does not
    original[box.slice]                                      # the crop

A presentation zooms in on one spot; picking it by hand is picking the example. Both
searches look at every window of `size` pixels whose corner lies on JPEG's 8x8 grid (so a
crop shows whole blocks), score it from per-pixel maps summed with an integral image, and
return the best; ties go to the first window in reading order, so the choice is
reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import blockiness

BLOCK = 8  # JPEG's block size


@dataclass(frozen=True)
class Region:
    """A square crop: top-left corner (y, x), side `size`, and the score that chose it."""

    y: int
    x: int
    size: int
    score: float

    @property
    def slice(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.size), slice(self.x, self.x + self.size)

    def crop(self, pixels: np.ndarray) -> np.ndarray:
        return pixels[self.slice]


def squared_error(original: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """Per-pixel squared error, mean over colour channels, as float64 (H, W)."""
    if original.shape != decoded.shape:
        raise ValueError(f"images differ in shape, {original.shape} vs {decoded.shape}")
    err = (original.astype(np.float64) - decoded.astype(np.float64)) ** 2
    return err.mean(axis=2) if err.ndim == 3 else err


def crop_side(shape, size: int) -> int:
    """The crop side used for an image of `shape`: `size`, or the largest multiple of 8 that fits."""
    h, w = shape[:2]
    side = min(int(size), h, w)
    return max(1, side - side % BLOCK) if side >= BLOCK else side


def best_window(score_map: np.ndarray, size: int) -> Region:
    """The `size` x `size` window on the 8-pixel grid with the largest sum of `score_map`."""
    h, w = score_map.shape
    side = crop_side((h, w), size)
    step = BLOCK if side >= BLOCK else 1
    table = np.zeros((h + 1, w + 1))
    table[1:, 1:] = score_map.cumsum(0).cumsum(1)
    ys = np.arange(0, h - side + 1, step)
    xs = np.arange(0, w - side + 1, step)
    sums = (table[ys[:, None] + side, xs[None, :] + side] - table[ys[:, None], xs[None, :] + side]
            - table[ys[:, None] + side, xs[None, :]] + table[ys[:, None], xs[None, :]])
    i, j = np.unravel_index(int(np.argmax(sums)), sums.shape)  # argmax: first of equal maxima
    return Region(y=int(ys[i]), x=int(xs[j]), size=side, score=float(sums[i, j]) / (side * side))


def worst_region(original: np.ndarray, ours: np.ndarray, theirs: np.ndarray, size: int = 128) -> Region:
    """Where `theirs` (JPEG) is furthest behind `ours`: the largest mean of their squared
    error minus ours. The score is that mean, in squared levels (negative: ours is worse everywhere)."""
    return best_window(squared_error(original, theirs) - squared_error(original, ours), size)


def grid_strength(pixels: np.ndarray) -> np.ndarray:
    """Per-pixel map of how much larger the steps across 8x8 block edges are than the steps inside.

    On luma (as `metrics.blockiness`), each horizontal and vertical neighbour difference is
    counted +1 at a block edge and -1/7 inside a block, so a window of whole blocks sums to
    (edge steps - mean inside step), zero for a picture with no grid of its own.
    """
    y = pixels.astype(np.float64)
    if y.ndim == 3:
        y = y @ np.array([0.299, 0.587, 0.114])
    h, w = y.shape
    out = np.zeros((h, w))
    dx = np.abs(np.diff(y, axis=1))
    dy = np.abs(np.diff(y, axis=0))
    wx = np.where(np.arange(w - 1) % BLOCK == BLOCK - 1, 1.0, -1.0 / (BLOCK - 1))
    wy = np.where(np.arange(h - 1) % BLOCK == BLOCK - 1, 1.0, -1.0 / (BLOCK - 1))
    out[:, :-1] += dx * wx[None, :]
    out[:-1, :] += dy * wy[:, None]
    return out


def block_grid_region(ours: np.ndarray, theirs: np.ndarray, size: int = 128) -> Region:
    """Where `theirs` (JPEG) shows its 8x8 block grid most beyond `ours`; score in luma levels per pixel."""
    if ours.shape != theirs.shape:
        raise ValueError(f"images differ in shape, {ours.shape} vs {theirs.shape}")
    return best_window(grid_strength(theirs) - grid_strength(ours), size)


def grid_words(original: np.ndarray, ours: np.ndarray, theirs: np.ndarray, region: Region,
               ours_name: str, theirs_name: str = "JPEG") -> str:
    """The block grid in words a non-specialist follows, with the blockiness of the crop."""
    scores = {name: blockiness(region.crop(p)) for name, p in
              (("original", original), (ours_name, ours), (theirs_name, theirs))}
    if any(np.isnan(v) for v in scores.values()):
        return "The crop is too small to measure a block grid."
    o, a, b = scores["original"], scores[ours_name], scores[theirs_name]
    numbers = (f"Blockiness in this crop: {theirs_name} {b:.2f}, {ours_name} {a:.2f}, the original {o:.2f} "
               "(1 means no grid; higher means the squares show).")
    if b > 1.15 * max(a, o):
        return (f"{theirs_name} cuts the picture into 8×8-pixel squares and codes each one on its own; "
                f"at this file size their edges show as a grid of little tiles. {ours_name} codes the "
                f"picture as a whole, so it has no such grid. {numbers}")
    return f"No clear 8×8 grid here: {theirs_name}'s squares are not visible at this file size. {numbers}"
