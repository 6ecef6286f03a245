"""The distortion that training and encode-time refinement minimise: MSE, or MSE blended with MS-SSIM.

One definition for both, so a refined encode optimises what its model was trained for (the
shipped hyperprior: 0.75 MSE + 0.25 (1 - MS-SSIM) / 45). The MS-SSIM here is differentiable
torch code with the same definition as `aecore.metrics.ms_ssim`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .metrics import _KERNEL, K1, K2, MS_SSIM_WEIGHTS, WINDOW

# The metric's window must still fit at MS-SSIM's coarsest scale (1/16): 176 px.
MS_SSIM_MIN_SIDE = WINDOW * 2 ** (len(MS_SSIM_WEIGHTS) - 1)
# Sides must halve evenly down to that scale.
MS_SSIM_MULTIPLE = 2 ** (len(MS_SSIM_WEIGHTS) - 1)
# 1 - MS-SSIM is 42 to 49 times the MSE (of [0, 1] images) on Kodak from 0.1 to 1.2 bpp
# (measured with our hyperprior): this puts the two distortions on one scale.
MS_SSIM_TO_MSE = 1 / 45


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Differentiable MS-SSIM of (B, C, H, W) images in [0, 1]: one value per image.

    The same definition as `aecore.metrics.ms_ssim` (11x11 Gaussian window, valid positions,
    2x2 average pooling, clamped terms, channel mean); sides must be multiples of
    MS_SSIM_MULTIPLE and at least MS_SSIM_MIN_SIDE px.
    """
    x, y = x.float(), y.float()
    g = torch.from_numpy(_KERNEL).to(x.device, torch.float32)  # the metric's own window
    c = 4 * x.shape[1]  # the four maps of every channel blurred in one grouped convolution (30% faster than four)
    gh, gw = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    c1, c2 = K1 ** 2, K2 ** 2
    terms = []
    for j in range(len(MS_SSIM_WEIGHTS)):
        if j:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        maps = torch.cat([x, y, x * x + y * y, x * y], 1)
        mx, my, sq_sum, xy = F.conv2d(F.conv2d(maps, gh, groups=c), gw, groups=c).chunk(4, 1)
        var_sum = sq_sum - mx * mx - my * my
        cov = xy - mx * my
        cs = (2 * cov + c2) / (var_sum + c2)
        if j < len(MS_SSIM_WEIGHTS) - 1:
            terms.append(cs.mean((2, 3)))
        else:
            terms.append(((2 * mx * my + c1) / (mx * mx + my * my + c1) * cs).mean((2, 3)))
    w = torch.tensor(MS_SSIM_WEIGHTS, device=x.device)[:, None, None]
    return (torch.stack(terms).clamp_min(1e-8) ** w).prod(0).mean(1)


def distortion(x_hat: torch.Tensor, x: torch.Tensor, ms_ssim_weight: float = 0.0) -> torch.Tensor:
    """Per-image distortion of (B, C, H, W) reconstructions in [0, 1]: the MSE, or with
    `ms_ssim_weight` (1 - w) MSE + w (1 - MS-SSIM) MS_SSIM_TO_MSE, so one lambda ladder serves
    both. An image that is not a whole number of MS-SSIM's blocks has its MS-SSIM taken over the
    largest top-left region that is; one smaller than MS_SSIM_MIN_SIDE gets the MSE alone."""
    mse = (x_hat - x).square().flatten(1).mean(1)
    h, w = (s // MS_SSIM_MULTIPLE * MS_SSIM_MULTIPLE for s in x.shape[-2:])
    if not ms_ssim_weight or min(h, w) < MS_SSIM_MIN_SIDE:
        return mse
    score = ms_ssim(x_hat[..., :h, :w], x[..., :h, :w])
    return (1 - ms_ssim_weight) * mse + ms_ssim_weight * MS_SSIM_TO_MSE * (1 - score)
