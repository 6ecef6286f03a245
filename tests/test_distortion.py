"""The shared training/refinement distortion: MSE, or MSE blended with MS-SSIM."""
import numpy as np
import pytest
import torch

from aecore import metrics
from aecore.distortion import MS_SSIM_TO_MSE, distortion


def _pair(h, w, seed=0):
    rng = np.random.default_rng(seed)
    a = np.clip(np.linspace(0, 255, w)[None, :, None] + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
    b = np.clip(a + rng.normal(0, 8, a.shape), 0, 255).astype(np.uint8)
    t = lambda v: torch.from_numpy(v).permute(2, 0, 1)[None].float().div(255)  # noqa: E731
    return a, b, t(a), t(b)


def test_a_blend_over_an_odd_size_takes_ms_ssim_over_its_largest_whole_region():
    a, b, x, y = _pair(201, 190)  # MS-SSIM over the top-left 192x176
    mse = float(((y - x) ** 2).mean())
    want = 0.7 * mse + 0.3 * MS_SSIM_TO_MSE * (1 - metrics.ms_ssim(a[:192, :176], b[:192, :176]))
    assert distortion(y, x, 0.3).item() == pytest.approx(want, rel=1e-4)  # float32 against float64
    assert distortion(y, x).item() == pytest.approx(mse, rel=1e-6)


def test_an_image_too_small_for_ms_ssim_is_measured_by_its_mse():
    _, _, x, y = _pair(170, 400)
    assert distortion(y, x, 0.5).item() == pytest.approx(float(((y - x) ** 2).mean()), rel=1e-6)
