"""Quality and rate metrics for uint8 images.

Distortion (PSNR, SSIM, MS-SSIM, SSIMULACRA 2), rate (bits per pixel, compression
ratio) and a JPEG blockiness score, all on uint8 (H, W, 3) RGB or (H, W) gray with a
peak value of 255. `evaluate` gathers them for one decoded image.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import io
import math
import os

import cv2
import numpy as np

PEAK = 255.0

# SSIM constants and window of Wang, Bovik, Sheikh, Simoncelli (2004):
# K1, K2 and an 11x11 Gaussian with sigma 1.5.
K1, K2 = 0.01, 0.03
WINDOW = 11
SIGMA = 1.5
# Per-scale exponents of Wang, Simoncelli, Bovik (2003), finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

_KERNEL = cv2.getGaussianKernel(WINDOW, SIGMA, cv2.CV_64F).ravel()
_KERNEL32 = _KERNEL.astype(np.float32)
_C1, _C2 = (K1 * PEAK) ** 2, (K2 * PEAK) ** 2
_MID = 128.0  # SSIM's maps are computed on planes less this (`_centred`)
# Rows per strip: the metrics run over strips of the image so that a 12 MP photo needs a few
# tens of MB of float64 temporaries instead of gigabytes; the values are those of one pass.
STRIP_ROWS = 256
# SSIM's strips run on this many threads (numpy and OpenCV release the GIL for whole arrays):
# each strip's sums are added in strip order, so the value does not depend on the count.
METRIC_THREADS = min(4, os.cpu_count() or 1)


def _strips(height: int, rows: int = STRIP_ROWS):
    """(top, bottom) row ranges covering 0..height."""
    for top in range(0, height, rows):
        yield top, min(top + rows, height)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB with peak 255; inf for identical images."""
    _check_pair(a, b)
    # Integer squared errors summed exactly, strip by strip (the float64 mean of one pass is
    # exact too: the sum stays below 2^53 at any size this library accepts).
    sse = 0
    for top, bottom in _strips(a.shape[0]):
        d = (a[top:bottom].astype(np.int32) - b[top:bottom]).ravel().astype(np.int64)
        sse += int(np.dot(d, d))
    mse = sse / a.size
    return math.inf if mse == 0 else float(10 * np.log10(PEAK**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004), averaged over RGB channels.

    Gaussian 11x11 window, sigma 1.5, population covariances, mean over the
    positions where the window fits: the same number as
    skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255). NaN for images under
    11 px on a side, where no window fits.
    """
    _check_pair(a, b)
    if ms_ssim_scales(*a.shape[:2]) == 0:
        return math.nan
    s, _ = next(_scales(_planes(a), _planes(b), 1))
    return float(s.mean())


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Multi-scale SSIM (Wang, Simoncelli, Bovik 2003), averaged over RGB channels.

    Scale j compares contrast-structure (cs); the coarsest scale also
    compares luminance (full SSIM); the result is prod_j value_j ** w_j with
    MS_SSIM_WEIGHTS. Negative values are clamped to 0 before the power, and
    channels are averaged at the end, as pytorch-msssim (used by CompressAI)
    does. Between scales, 2x2 blocks are averaged; an odd side repeats its
    last row or column (pytorch-msssim pads zeros there instead, which
    darkens the border).

    Five scales need 161 px on the shorter side (the 11 px window must fit
    after four halvings). Smaller images use as many scales as fit, with the
    leading weights renormalised to sum to 1; one scale is plain SSIM.
    NaN below 11 px.
    """
    _check_pair(a, b)
    n = ms_ssim_scales(*a.shape[:2])
    return _combine(list(_scales(_planes(a), _planes(b), n)))


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a decibel scale, -10 log10(1 - value), which spreads out values near 1."""
    if math.isnan(value):
        return math.nan
    return math.inf if value >= 1 else -10 * math.log10(1 - value)


# SSIMULACRA 2 needs 8 px a side at its finest scale (the reference refuses smaller images).
SSIMULACRA2_MIN_SIDE = 8


def ssimulacra2(a: np.ndarray, b: np.ndarray) -> float:
    """SSIMULACRA 2 (Cloudinary, 2022; the JPEG XL project's perceptual metric) of `b` against `a`.

    100 is identical; 90 visually lossless, 70 high, 50 medium, 30 low quality; it can go
    negative. Computed by the `ssimulacra2` package (numpy/scipy, the reference's steps in
    XYB at six scales). Its entry point reads images with PIL.Image.open, so both go in as
    in-memory PPM/PGM files: exact pixels, no temporary files. Grayscale is scored as gray
    RGB, as the reference does. NaN under 8 px a side. About 0.7 s for 768x512 on one core,
    growing with the pixel count.
    """
    _check_pair(a, b)
    if min(a.shape[:2]) < SSIMULACRA2_MIN_SIDE:
        return math.nan
    from ssimulacra2 import compute_ssimulacra2

    return float(compute_ssimulacra2(_netpbm(a), _netpbm(b)))


def _netpbm(image: np.ndarray) -> io.BytesIO:
    """An uncompressed in-memory PPM (RGB) or PGM (gray) file: the cheapest file Pillow opens."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, "PPM")
    buf.seek(0)
    return buf


def bpp(num_bytes: int, height: int, width: int) -> float:
    """Bits per pixel: 8 * bytes / pixels, with every byte of the stream counted."""
    _check_dims(height, width)
    return 8 * num_bytes / (height * width)


def compression_ratio(num_bytes: int, height: int, width: int, channels: int = 3) -> float:
    """Raw uint8 size over compressed size (height * width * channels / bytes)."""
    _check_dims(height, width)
    if num_bytes <= 0:
        raise ValueError(f"num_bytes must be positive, got {num_bytes}")
    return height * width * channels / num_bytes


def blockiness(image: np.ndarray) -> float:
    """How visible an 8x8 block grid is (JPEG's), as a gradient ratio.

    On luma Y (BT.601: 0.299 R + 0.587 G + 0.114 B), take absolute
    differences between neighbours, horizontally |Y[:, x+1] - Y[:, x]| and
    vertically likewise. Then

        blockiness = mean of the differences across block boundaries
                     (x % 8 == 7, i.e. x -> x+1; same for rows)
                   / mean of the differences everywhere else.

    Natural photos and learned codecs score about 1; JPEG at low quality
    scores clearly above 1, since each block is smooth inside and jumps at
    its edge. NaN for images under 16 px on a side (not two whole blocks);
    1.0 for a flat image.
    """
    _check_image(image)
    h, w = image.shape[:2]
    if min(h, w) < 16:
        return math.nan
    on_x = np.arange(w - 1) % 8 == 7
    edge_sum = rest_sum = 0.0
    for top, bottom in _strips(h):  # each strip also takes the row below it, for the vertical steps
        y = image[top:bottom + 1].astype(np.float64)
        if y.ndim == 3:
            y = y @ np.array([0.299, 0.587, 0.114])
        dx = np.abs(np.diff(y[:bottom - top], axis=1))  # column x is the step x -> x+1
        dy = np.abs(np.diff(y, axis=0))  # row i is the step from row top+i to the next
        on_y = np.arange(top, top + dy.shape[0]) % 8 == 7
        edge = dx[:, on_x].sum() + dy[on_y].sum()
        edge_sum += edge
        rest_sum += dx.sum() + dy.sum() - edge
    edge_n = h * int(on_x.sum()) + w * int((np.arange(h - 1) % 8 == 7).sum())
    rest_n = h * (w - 1) + (h - 1) * w - edge_n
    if rest_sum == 0:
        return 1.0 if edge_sum == 0 else math.inf
    return float((edge_sum / edge_n) / (rest_sum / rest_n))


def rate(num_bytes: int, height: int, width: int, channels: int = 3) -> dict:
    """The size keys of `evaluate` (bytes, bpp, ratio) for a file of `num_bytes`."""
    return {"bytes": int(num_bytes), "bpp": float(bpp(num_bytes, height, width)),
            "ratio": float(compression_ratio(num_bytes, height, width, channels))}


STRUCTURAL = ("ssim", "ms_ssim", "ms_ssim_db")  # the keys `structural_scores` gives (one pass over the scales)


def evaluate(original: np.ndarray, decoded: np.ndarray, num_bytes: int, perceptual: bool = True,
             structural: bool = True) -> dict:
    """Rate and distortion of one decoded image, as plain Python numbers.

    Keys: bytes, bpp, ratio, psnr, ssim, ms_ssim, ms_ssim_db, ssimulacra2,
    blockiness (of the decoded image). SSIMULACRA 2 costs more than all the
    others together; `perceptual=False` leaves it out (NaN) where a caller
    measures many points and does not show it. `structural=False` leaves the
    STRUCTURAL keys NaN too (about 0.1 s at 768x512, a third of a learned encode and
    decode there), for a page that shows a result first and fills them in after with
    `structural_scores`.
    """
    _check_pair(original, decoded)
    h, w = original.shape[:2]
    channels = original.shape[2] if original.ndim == 3 else 1
    return {
        **rate(num_bytes, h, w, channels),
        "psnr": psnr(original, decoded),
        **(structural_scores(original, decoded) if structural else dict.fromkeys(STRUCTURAL, math.nan)),
        "ssimulacra2": ssimulacra2(original, decoded) if perceptual else math.nan,
        "blockiness": blockiness(decoded),
    }


def structural_scores(original: np.ndarray, decoded: np.ndarray) -> dict:
    """SSIM, MS-SSIM and MS-SSIM in dB (the STRUCTURAL keys of `evaluate`) from one pass over the scales."""
    _check_pair(original, decoded)
    stats = list(_scales(_planes(original), _planes(decoded), ms_ssim_scales(*original.shape[:2])))
    ms = _combine(stats)
    return {"ssim": float(stats[0][0].mean()) if stats else math.nan, "ms_ssim": ms, "ms_ssim_db": ms_ssim_db(ms)}


def ms_ssim_scales(height: int, width: int) -> int:
    """How many MS-SSIM scales fit an image (0 to 5): the window must fit the coarsest."""
    side, n = min(height, width), 0
    while n < len(MS_SSIM_WEIGHTS) and side >= WINDOW:
        n, side = n + 1, (side + 1) // 2
    return n


def _scales(x: np.ndarray, y: np.ndarray, n: int):
    """Per-channel (ssim, cs) of (C, H, W) planes at n scales, finest first."""
    for j in range(n):
        if j:
            x, y = _halve(x), _halve(y)
        yield _ssim_cs(x, y)


def _combine(stats: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """MS-SSIM from per-scale stats: cs at all scales but the last, ssim there."""
    n = len(stats)
    if n == 0:
        return math.nan
    weights = np.array(MS_SSIM_WEIGHTS[:n]) / sum(MS_SSIM_WEIGHTS[:n])
    terms = np.array([cs for _, cs in stats[:-1]] + [stats[-1][0]])  # (scales, C)
    # Clamped at 0 so a negative term cannot meet a fractional power (pytorch-msssim does the same).
    per_channel = np.prod(np.maximum(terms, 0) ** weights[:, None], axis=0)
    return float(per_channel.mean())


def _ssim_cs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean SSIM and mean contrast-structure term of (C, H, W) planes (any dtype)
    over the positions where the window fits ("valid", as Wang et al. do), strip by strip:
    each strip carries the window's radius of rows on both sides, so its maps are the whole
    image's maps on its rows."""
    c, h, w = x.shape
    r = WINDOW // 2

    def sums(rows: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        rows = slice(rows[0], rows[1] + 2 * r)
        s, cs = _ssim_cs_maps(_centred(x[:, rows]), _centred(y[:, rows]))
        return (s[:, r:-r, r:-r].sum(axis=(1, 2), dtype=np.float64),
                cs[:, r:-r, r:-r].sum(axis=(1, 2), dtype=np.float64))

    s_sum, cs_sum = np.zeros(c), np.zeros(c)
    strips = list(_strips(h - 2 * r))
    with ThreadPoolExecutor(min(METRIC_THREADS, len(strips))) as pool:  # at most that many strips in memory
        for s, cs in pool.map(sums, strips):
            s_sum += s
            cs_sum += cs
    n = (h - 2 * r) * (w - 2 * r)
    return s_sum / n, cs_sum / n


def _centred(planes: np.ndarray) -> np.ndarray:
    """float32 planes less the mid grey. float32 maps take 30% less time than float64 ones
    (half the memory traffic), and centring keeps the squares four times smaller, so the
    variances (which do not move with the mean) keep their digits: SSIM and MS-SSIM come out
    within about 1e-6 of the float64 computation, far below the four decimals they are shown to."""
    out = np.ascontiguousarray(planes, dtype=np.float32)
    out -= np.float32(_MID)
    return out


def _ssim_cs_maps(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SSIM and contrast-structure maps of `_centred` (C, H, W) planes, borders included."""
    # In-place arithmetic: at these sizes fresh temporaries cost more than the maths.
    mx, my = _blur(x), _blur(y)
    sq = x * x
    sq += y * y
    var_sum = _blur(sq)  # only the sum of the two variances is needed
    cov = _blur(np.multiply(x, y, out=sq))
    mxy = mx * my
    m2 = np.square(mx)
    m2 += np.square(my, out=sq)
    var_sum -= m2
    var_sum += _C2
    cov -= mxy
    cov *= 2
    cov += _C2
    cs = np.divide(cov, var_sum, out=cov)  # (2 cov + C2) / (var_x + var_y + C2)
    mx += _MID  # the means themselves, for the luminance term
    my += _MID
    np.multiply(mx, my, out=mxy)
    np.square(mx, out=m2)
    m2 += np.square(my, out=my)
    mxy *= 2
    mxy += _C1
    m2 += _C1
    lum = np.divide(mxy, m2, out=mxy)  # (2 mx my + C1) / (mx^2 + my^2 + C1)
    return np.multiply(lum, cs, out=lum), cs


def _blur(planes: np.ndarray) -> np.ndarray:
    """Gaussian window over each (H, W) plane of (C, H, W).

    Full size, because arithmetic on contiguous arrays is several times
    faster than on cropped views; the border rows, where the window does not
    fit, are dropped once at the end.
    """
    out = np.empty_like(planes)
    for src, dst in zip(planes, out):
        cv2.sepFilter2D(src, -1, _KERNEL32, _KERNEL32, dst=dst)
    return out


def _halve(planes: np.ndarray) -> np.ndarray:
    """2x2 average pooling of (C, H, W) (any dtype) to float64, in strips of an even number of
    rows; odd sides repeat their last row/column."""
    c, h, w = planes.shape
    out = np.empty((c, (h + 1) // 2, (w + 1) // 2))
    for top, bottom in _strips(h, 2 * STRIP_ROWS):
        part = planes[:, top:bottom].astype(np.float64)
        if part.shape[1] % 2 or w % 2:  # only the last strip can have an odd row count
            part = np.pad(part, ((0, 0), (0, part.shape[1] % 2), (0, w % 2)), mode="edge")
        half = part[:, 0::2, 0::2] + part[:, 1::2, 0::2]
        half += part[:, 0::2, 1::2]
        half += part[:, 1::2, 1::2]
        half *= 0.25
        out[:, top // 2:top // 2 + half.shape[1]] = half
    return out


def _planes(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) or (H, W, C) to uint8 (C, H, W): strips become float64 as they are used."""
    return image[None] if image.ndim == 2 else np.ascontiguousarray(image.transpose(2, 0, 1))


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected a uint8 image shaped (H, W) or (H, W, C), got {desc}")


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    _check_image(a)
    _check_image(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape, {a.shape} vs {b.shape}; compare a decoded image with its own original")


def _check_dims(height: int, width: int) -> None:
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
