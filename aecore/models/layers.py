"""Building blocks shared by the architectures: convolutions, GDN, gain units."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """A 'same'-padded convolution that downsamples by `stride`."""
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """The transposed twin of `conv`: upsamples by exactly `stride`."""
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride,
                              padding=kernel // 2, output_padding=stride - 1)


class SubpixelConv(nn.Module):
    """A stride-s transposed convolution rewritten as one convolution over the input that
    makes s*s output phases, then a pixel shuffle: the same function (up to rounding).

    For few output channels (the decoder's last layer, 3) oneDNN runs this form about
    twice as fast as the transposed convolution. Geometry of `deconv`: odd kernel,
    padding k // 2, output_padding s - 1. Output pixel s*m + r takes input m + d through
    transposed tap k = r + k // 2 - s*d; each phase r is one output channel group.
    """

    def __init__(self, layer: nn.ConvTranspose2d):
        super().__init__()
        (k, _), (s, _), (p, _) = layer.kernel_size, layer.stride, layer.padding
        if k % 2 == 0 or p != k // 2 or layer.output_padding != (s - 1, s - 1):
            raise ValueError("SubpixelConv rewrites transposed convolutions shaped like deconv() only")
        reach = (p + s - 1) // s                  # input offsets d in [-reach, reach]
        cin, cout = layer.in_channels, layer.out_channels
        w = layer.weight.new_zeros(cout, s, s, cin, 2 * reach + 1, 2 * reach + 1)
        for ry in range(s):
            for rx in range(s):
                for dy in range(-reach, reach + 1):
                    for dx in range(-reach, reach + 1):
                        ky, kx = ry + p - s * dy, rx + p - s * dx
                        if 0 <= ky < k and 0 <= kx < k:
                            w[:, ry, rx, :, dy + reach, dx + reach] = layer.weight[:, :, ky, kx].t()
        self.conv = nn.Conv2d(cin, cout * s * s, 2 * reach + 1, padding=reach, bias=layer.bias is not None)
        with torch.no_grad():
            self.conv.weight.copy_(w.reshape(cout * s * s, cin, 2 * reach + 1, 2 * reach + 1))
            if layer.bias is not None:
                self.conv.bias.copy_(layer.bias.repeat_interleave(s * s))
        self.stride = s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), self.stride)


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient still flows when it pushes x back up (Balle 2018)."""

    @staticmethod
    def forward(ctx, x, bound):
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        pass_through = (x >= ctx.bound) | (grad < 0)
        return grad * pass_through, None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    return _LowerBound.apply(x, bound)


class GDN(nn.Module):
    """Generalized divisive normalization (Balle, Laparra, Simoncelli 2016).

    y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2); the inverse (IGDN, used in the
    decoder) multiplies instead. Parameters are kept non-negative by a lower bound.
    """

    def __init__(self, channels: int, inverse: bool = False, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        # fill_diagonal_, not gamma_init * eye: eye and tensor arithmetic on the meta device
        # (weights' shape checks) set off a lazy import of torch's compiler stack.
        self.gamma = nn.Parameter(torch.zeros(channels, channels).fill_diagonal_(gamma_init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = lower_bound(self.beta, 1e-6)
        gamma = lower_bound(self.gamma, 0.0)
        norm = F.conv2d(x * x, gamma[:, :, None, None].to(x.dtype), beta.to(x.dtype))
        if torch.is_grad_enabled():
            return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)
        return (norm.sqrt_() if self.inverse else norm.rsqrt_()).mul_(x)  # same values, fewer big allocations


class GainUnits(nn.Module):
    """Per-channel gains for a continuous rate from one network (Cui et al. 2021).

    Level l in [0, L-1] owns a gain vector (applied before quantization) and an inverse
    gain (applied after). A fractional quality interpolates the log-gains of its two
    neighbouring levels, which is the paper's exponential interpolation.
    """

    def __init__(self, levels: int, channels: int, init_log_gain: tuple[float, ...]):
        super().__init__()
        if levels < 2:
            raise ValueError("gain units need at least two levels")
        # Built from Python floats: tensor arithmetic on the meta device (the weights' shape
        # checks build models there) sets off a lazy import of torch's compiler stack (~1 s).
        self.log_gain = nn.Parameter(torch.tensor([[g] * channels for g in init_log_gain[:levels]]))
        self.log_inverse_gain = nn.Parameter(torch.tensor([[-g] * channels for g in init_log_gain[:levels]]))

    def _interp(self, table: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        # quality: (B,) in [1, L]  ->  gains (B, C, 1, 1)
        pos = (quality.to(table.dtype) - 1).clamp(0, table.shape[0] - 1)
        low = pos.floor().long().clamp(max=table.shape[0] - 2)
        t = (pos - low)[:, None]
        log = table[low] * (1 - t) + table[low + 1] * t
        return log.exp()[:, :, None, None]

    def gain(self, quality: torch.Tensor) -> torch.Tensor:
        return self._interp(self.log_gain, quality)

    def inverse_gain(self, quality: torch.Tensor) -> torch.Tensor:
        return self._interp(self.log_inverse_gain, quality)
