"""aecore.metrics against hand computations, scikit-image and a plain MS-SSIM reference."""
import math

import cv2
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from aecore import metrics
from aecore.metrics import (
    STRUCTURAL,
    blockiness,
    bpp,
    compression_ratio,
    evaluate,
    ms_ssim,
    ms_ssim_db,
    ms_ssim_scales,
    psnr,
    ssim,
    ssimulacra2,
    structural_scores,
)

RNG = np.random.default_rng(0)
ASTRONAUT = data.astronaut()


def noisy(image: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, image.shape)
    return np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def reference_ms_ssim(a: np.ndarray, b: np.ndarray, scales: int) -> float:
    """Straight from Wang et al. 2003, one channel and one scale at a time."""
    weights = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333][:scales])
    weights /= weights.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda v: gaussian_filter(v, 1.5, truncate=3.5)[5:-5, 5:-5]  # 11 taps, valid part
    a, b = np.atleast_3d(a).astype(np.float64), np.atleast_3d(b).astype(np.float64)
    per_channel = []
    for ch in range(a.shape[2]):
        x, y, value = a[..., ch], b[..., ch], 1.0
        for j in range(scales):
            mx, my = blur(x), blur(y)
            vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
            cs = np.mean((2 * cov + c2) / (vx + vy + c2))
            s = np.mean((2 * mx * my + c1) / (mx**2 + my**2 + c1) * (2 * cov + c2) / (vx + vy + c2))
            value *= max(s if j == scales - 1 else cs, 0) ** weights[j]
            if j < scales - 1:
                x = np.pad(x, ((0, x.shape[0] % 2), (0, x.shape[1] % 2)), mode="edge")
                y = np.pad(y, ((0, y.shape[0] % 2), (0, y.shape[1] % 2)), mode="edge")
                x = (x[::2, ::2] + x[1::2, ::2] + x[::2, 1::2] + x[1::2, 1::2]) / 4
                y = (y[::2, ::2] + y[1::2, ::2] + y[::2, 1::2] + y[1::2, 1::2]) / 4
        per_channel.append(value)
    return float(np.mean(per_channel))


def test_psnr_by_hand_and_against_skimage():
    a = np.array([[10, 20], [30, 40]], np.uint8)
    b = np.array([[12, 20], [30, 36]], np.uint8)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / ((4 + 16) / 4)))
    b2 = noisy(ASTRONAUT, 8)
    assert psnr(ASTRONAUT, b2) == pytest.approx(peak_signal_noise_ratio(ASTRONAUT, b2, data_range=255), abs=1e-9)
    assert psnr(a, a) == math.inf


@pytest.mark.parametrize("image", [ASTRONAUT[100:300, 150:400], data.camera()[::2, ::2]], ids=["rgb", "gray"])
def test_ssim_matches_skimage(image):
    other = noisy(image, 12)
    expected = structural_similarity(
        image, other, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        channel_axis=-1 if image.ndim == 3 else None,
    )
    # float32 maps (`metrics._centred`): within 2e-6 of skimage's float64, four decimals shown
    assert ssim(image, other) == pytest.approx(expected, abs=2e-6)
    assert ssim(image, image) == 1.0


@pytest.mark.parametrize("shape", [(512, 512, 3), (201, 173, 3), (161, 170), (100, 99, 3), (23, 40)])
def test_ms_ssim_matches_reference(shape):
    a = ASTRONAUT[: shape[0], : shape[1]]
    a = a if len(shape) == 3 else a[..., 1]
    b = noisy(a, 10)
    assert ms_ssim(a, b) == pytest.approx(reference_ms_ssim(a, b, ms_ssim_scales(*shape[:2])), abs=1e-6)


def test_ms_ssim_identity_and_monotone_in_noise():
    assert ms_ssim(ASTRONAUT, ASTRONAUT) == 1.0
    values = [ms_ssim(ASTRONAUT, noisy(ASTRONAUT, sigma)) for sigma in (2, 5, 10, 20, 40)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert values[0] > 0.99 and values[-1] < 0.9


def test_ms_ssim_uses_fewer_scales_on_small_images():
    assert [ms_ssim_scales(s, 1000) for s in (10, 11, 21, 41, 81, 160, 161, 4000)] == [0, 1, 2, 3, 4, 4, 5, 5]
    small = ASTRONAUT[:40, :60]  # 40 -> 20 -> 10: two scales
    other = noisy(small, 10)
    assert ms_ssim(small, other) == pytest.approx(reference_ms_ssim(small, other, 2), abs=1e-6)
    assert ms_ssim(ASTRONAUT[:11, :11], other[:11, :11]) == pytest.approx(ssim(ASTRONAUT[:11, :11], other[:11, :11]))
    assert math.isnan(ms_ssim(small[:10], other[:10])) and math.isnan(ssim(small[:10], other[:10]))


def test_ms_ssim_db():
    assert ms_ssim_db(0.99) == pytest.approx(20.0)
    assert ms_ssim_db(0.9) == pytest.approx(10.0)
    assert ms_ssim_db(1.0) == math.inf
    assert math.isnan(ms_ssim_db(math.nan))


def test_rate_arithmetic():
    assert bpp(1000, 100, 80) == 1.0
    assert compression_ratio(1000, 100, 80) == 24.0
    assert compression_ratio(1000, 100, 80, channels=1) == 8.0
    with pytest.raises(ValueError, match="positive"):
        compression_ratio(0, 100, 80)
    with pytest.raises(ValueError, match="positive"):
        bpp(10, 0, 80)


def test_blockiness_sees_the_jpeg_grid():
    natural = blockiness(ASTRONAUT)
    low, high = blockiness(jpeg(ASTRONAUT, 5)), blockiness(jpeg(ASTRONAUT, 90))
    assert 0.9 < natural < 1.1
    assert low > 1.3 and low > high
    assert 0.9 < blockiness(data.camera()) < 1.1  # gray works too


def test_blockiness_edge_cases():
    assert math.isnan(blockiness(ASTRONAUT[:15, :100]))
    assert blockiness(np.full((32, 32), 7, np.uint8)) == 1.0
    grid = np.zeros((32, 32), np.uint8)
    grid[:, 8:16] = grid[:, 24:] = 200  # steps only at block edges
    assert blockiness(grid) == math.inf


def test_evaluate_returns_plain_numbers():
    decoded = jpeg(ASTRONAUT, 30)
    result = evaluate(ASTRONAUT, decoded, 20_000)
    assert set(result) == {"bytes", "bpp", "ratio", "psnr", "ssim", "ms_ssim", "ms_ssim_db", "ssimulacra2",
                           "blockiness"}
    assert type(result["bytes"]) is int and all(type(v) is float for k, v in result.items() if k != "bytes")
    assert result["ssim"] == pytest.approx(ssim(ASTRONAUT, decoded))
    assert result["ms_ssim"] == pytest.approx(ms_ssim(ASTRONAUT, decoded))
    assert result["bpp"] == pytest.approx(8 * 20_000 / 512**2)
    assert result["blockiness"] == pytest.approx(blockiness(decoded))
    assert result["ssimulacra2"] == ssimulacra2(ASTRONAUT, decoded)
    assert math.isnan(evaluate(ASTRONAUT, decoded, 20_000, perceptual=False)["ssimulacra2"])
    quick = evaluate(ASTRONAUT, decoded, 20_000, perceptual=False, structural=False)
    assert all(math.isnan(quick[k]) for k in STRUCTURAL) and quick["psnr"] == result["psnr"]
    assert structural_scores(ASTRONAUT, decoded) == {k: result[k] for k in STRUCTURAL}
    tiny = evaluate(ASTRONAUT[:3, :7], ASTRONAUT[:3, :7], 50)
    assert tiny["psnr"] == math.inf and math.isnan(tiny["ms_ssim"]) and math.isnan(tiny["blockiness"])
    assert math.isnan(tiny["ssimulacra2"])


CROP = np.ascontiguousarray(ASTRONAUT[:192, 160:416])  # face and uniform: the score's range in 0.1 s


def test_ssimulacra2_is_the_packages_score_on_files():
    """The same number as the package's own entry point given real PNG files."""
    import io

    from PIL import Image
    from ssimulacra2 import compute_ssimulacra2

    def png(image):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "PNG")
        buf.seek(0)
        return buf

    decoded = jpeg(CROP, 40)
    assert ssimulacra2(CROP, decoded) == compute_ssimulacra2(png(CROP), png(decoded))


def test_ssimulacra2_identity_and_monotone_in_distortion():
    assert ssimulacra2(CROP, CROP) == 100.0
    by_quality = [ssimulacra2(CROP, jpeg(CROP, q)) for q in (5, 15, 30, 60, 90)]
    assert by_quality == sorted(by_quality) and by_quality[-1] < 100
    by_noise = [ssimulacra2(CROP, noisy(CROP, s)) for s in (2, 6, 15)]
    assert by_noise == sorted(by_noise, reverse=True)


def test_ssimulacra2_follows_the_references_published_scale():
    """The reference's calibration: libjpeg-turbo 4:2:0 scores on average about 30 at quality 20
    and 50 at quality 35; 90 is visually lossless. One photo sits near those averages."""
    assert 15 < ssimulacra2(ASTRONAUT, jpeg(ASTRONAUT, 20)) < 50
    assert 40 < ssimulacra2(ASTRONAUT, jpeg(ASTRONAUT, 35)) < 70
    assert ssimulacra2(ASTRONAUT, jpeg(ASTRONAUT, 98)) > 85


def test_ssimulacra2_gray_is_scored_as_gray_rgb_and_small_images_are_nan():
    gray = cv2.cvtColor(CROP, cv2.COLOR_RGB2GRAY)
    blurred = cv2.GaussianBlur(gray, (5, 5), 1.5)
    as_rgb = lambda g: np.ascontiguousarray(np.dstack([g] * 3))  # noqa: E731
    assert ssimulacra2(gray, blurred) == pytest.approx(ssimulacra2(as_rgb(gray), as_rgb(blurred)))
    assert math.isnan(ssimulacra2(CROP[:7], CROP[:7])) and ssimulacra2(CROP[:8, :8], CROP[:8, :8]) == 100


@pytest.mark.parametrize("metric", [psnr, ssim, ms_ssim, ssimulacra2])
def test_mismatched_inputs_raise(metric):
    with pytest.raises(ValueError, match="differ in shape"):
        metric(ASTRONAUT, ASTRONAUT[:, :, 0])
    with pytest.raises(ValueError, match="uint8"):
        metric(ASTRONAUT.astype(np.float32), ASTRONAUT.astype(np.float32))


def test_strips_give_the_values_of_one_pass(monkeypatch):
    """The metrics run strip by strip (bounded memory on large photos): with strips of a few rows,
    odd sides and gray or colour, the numbers are those of a single strip over the whole image,
    whatever the number of threads the strips run on."""
    for image in (ASTRONAUT[:301, :257], ASTRONAUT[:183, :400].mean(axis=2).astype(np.uint8)):
        monkeypatch.setattr(metrics, "METRIC_THREADS", 1)
        worse = noisy(image, 12)
        values = {}
        for rows in (10**9, 16, 7):
            monkeypatch.setattr(metrics, "STRIP_ROWS", rows)
            values[rows] = [metrics.psnr(image, worse), metrics.ssim(image, worse), metrics.ms_ssim(image, worse),
                            metrics.blockiness(worse)]
        assert values[16] == pytest.approx(values[10**9], rel=1e-12)
        assert values[7] == pytest.approx(values[10**9], rel=1e-12)
        monkeypatch.setattr(metrics, "METRIC_THREADS", 3)  # strips computed side by side: the same sums
        assert [metrics.ssim(image, worse), metrics.ms_ssim(image, worse)] == values[7][1:3]
