"""Target file sizes: the best quality of a codec whose file fits a byte budget.

    quality, data = fit("jpeg", image, parse_size("25KB"))   # raises BudgetError if nothing fits

One search for every caller (the command line's --target-size/--target-bpp, the Compare
page's "same size" mode, the matched sides of a comparison). Size is taken to grow with
quality, so the search is a bisection on the real encoded length: integer qualities
(JPEG, WebP, AVIF, JPEG 2000...) exactly, about 7 encodes over 1..100; a continuous
(learned) quality down to `tol`, on the 1/1000 grid the stream stores. Every returned
file was encoded and checked against the budget.

A learned codec at a refining effort (`LearnedCodec.at_effort("best")`, up to a minute and a
half per encode) is not bisected at that effort: the quality is searched with the fast
encoder, the chosen quality is encoded at the effort, and its real length is checked; if
it does not fit, the search runs again against a budget shrunk by the overshoot (a few
times at most). Refined files are usually smaller than fast ones at the same quality, so
the file found this way can land somewhat under the budget.
"""
from __future__ import annotations

import math
import re

import numpy as np

from .codecs import Codec, CodecError, get_codec

_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000 ** 2, "kib": 1024, "mib": 1024 ** 2}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


class BudgetError(CodecError):
    """A budget below the codec's smallest file for this image (`smallest` bytes, at `quality`)."""

    def __init__(self, codec: str, budget: int, smallest: int, quality: float, metadata: int = 0):
        carried = f", {metadata} of them metadata (--strip leaves it out)" if metadata else ""
        super().__init__(f"{codec}: no file fits in {budget} bytes; the smallest is {smallest} bytes "
                         f"(quality {quality:g}{carried})")
        self.budget, self.smallest, self.quality = budget, smallest, quality


def parse_size(text: str | int) -> int:
    """A byte count from "25000", "25KB" (1000 bytes), "24.4KiB" (1024), "1.5MB", "2MiB": floored."""
    match = _SIZE.match(str(text))
    unit = match.group(2).lower() if match else None
    if unit not in _UNITS:
        raise ValueError(f"invalid size {text!r}; write it like 25000, 25KB, 24.4KiB or 1.5MB")
    size = math.floor(float(match.group(1)) * _UNITS[unit])
    if size < 1:
        raise ValueError(f"size {text!r} is under one byte")
    return size


def bpp_budget(bpp: float, height: int, width: int) -> int:
    """The byte budget of `bpp` bits per pixel (the whole file) on a height x width image."""
    if not bpp > 0 or math.isinf(bpp):
        raise ValueError(f"bits per pixel must be a positive number, got {bpp}")
    return math.floor(bpp * height * width / 8)


def fit(codec: Codec | str, image: np.ndarray, max_bytes: int, tol: float = 0.01,
        overhead: int = 0, start: float | None = None) -> tuple[float, bytes]:
    """(quality, file): the highest quality whose file, plus `overhead` bytes added around
    it later (metadata), fits in `max_bytes`. Raises BudgetError when even the lowest does not.

    `start` (integer qualities only) is where the answer probably is, such as the last one for
    a nearby budget: the search steps out from it (1, 2, 4... qualities) to bracket the answer,
    then bisects, so a small change costs two or three encodes instead of seven. The answer
    is the same (for sizes that grow with quality); a continuous quality ignores `start`, so
    its answer, which depends on the bisection's path within `tol`, is always the same.
    """
    codec = get_codec(codec) if isinstance(codec, str) else codec
    if getattr(codec, "effort", "fast") != "fast":
        return _fit_refined(codec, image, max_bytes, tol, overhead)
    qmin, qmax = codec.quality_range
    room = max_bytes - overhead
    tried: dict[float, bytes] = {}

    def encoded(q: float) -> bytes:
        if q not in tried:
            tried[q] = codec.encode(image, q)
        return tried[q]

    def fits(q: float) -> bool:
        return len(encoded(q)) <= room

    lo, hi = (float(qmin), float(qmax)) if codec.continuous else (int(qmin), int(qmax))
    if start is not None and not codec.continuous and lo < round(start) < hi:
        lo, hi = _bracket(fits, round(start), lo, hi)
    if not fits(lo):
        raise BudgetError(codec.name, max_bytes, len(encoded(lo)) + overhead, lo, overhead)
    if fits(hi):
        return hi, encoded(hi)
    if codec.continuous:  # lo fits, hi does not: halve the gap down to tol, on the stored grid
        while hi - lo > tol and lo < (mid := round((lo + hi) / 2, 3)) < hi:
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    else:  # lo fits; the answer is in lo..hi - 1
        hi -= 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo, encoded(lo)


def _bracket(fits, start: int, lo: int, hi: int) -> tuple[int, int]:
    """(lo, hi) around the answer, stepping out from `start` by doubling steps: lo is a quality
    that fits (or the lowest, untried) and hi one that does not (or the highest, untried)."""
    step = 1
    if fits(start):
        lo = start
        while lo + step < hi:
            if not fits(lo + step):
                return lo, lo + step
            lo, step = lo + step, step * 2
        return lo, hi
    hi = start
    while hi - step > lo:
        if fits(hi - step):
            return hi - step, hi
        hi, step = hi - step, step * 2
    return lo, hi


REFINED_TRIES = 4  # refined encodes a search at a refining effort may spend before giving up


def _fit_refined(codec, image: np.ndarray, max_bytes: int, tol: float, overhead: int) -> tuple[float, bytes]:
    """The fast search, then one encode at the codec's effort, re-searched downward on overshoot."""
    fast = codec.at_effort("fast")
    room, budget, q = max_bytes - overhead, max_bytes, None
    for _ in range(REFINED_TRIES):
        try:
            q, _ = fit(fast, image, budget, tol, overhead)
        except BudgetError:  # even the fast lowest quality overshoots the shrunk budget
            q = float(codec.quality_range[0])
        data = codec.encode(image, q)
        if len(data) <= room:
            return q, data
        if q == codec.quality_range[0]:
            break
        budget = overhead + math.floor((budget - overhead) * room / len(data))
    raise BudgetError(codec.name, max_bytes, len(data) + overhead, q)
