"""Entropy parameters that every CPU and every library computes to the same bits.

The decoder must pick exactly the encoder's scale table for every symbol of y, or the entropy
decoder desynchronises and the rest of the picture is noise. Floating-point convolutions do
not give the same bits everywhere: oneDNN sums in another order with its AVX2 kernels than with
its AVX-512 ones, onnxruntime in another again. Of 72 Kodak streams made on an AVX-512 machine
(qualities 1, 4 and 8) with the hyper-synthesis in float32, 13 did not decode when the decoder
ran oneDNN's AVX2 kernels (`ONEDNN_MAX_CPU_ISA=AVX2`, as on many AMD machines).

So coding runs the hyper-synthesis h_s in fixed point (integer networks, Balle, Johnston and
Minnen 2019, here without retraining: the grids are fine enough that the trained float
network's means and scales move by a few thousandths at most, which changes under one y symbol
in 5,000 and the rate by under 0.1%). Activations are integers times 2**-ACT_BITS,
weights integers times a per-layer power of two, all held in float64. Every product and every
partial sum is then an integer below 2**53, which float64 holds exactly, so any summation order
(any kernel, BLAS, numpy or torch) gives the same result. Between layers, LeakyReLU's product
and the rounding to the activation grid are single IEEE operations, correctly rounded on every
machine. The input is round(z) times z's inverse gain on the activation grid; that gain comes
from `math.exp`, and an encoder refuses a quality at which a libm could round it the other way
(`safe_quality`).
"""
from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

ACT_BITS = 16                 # activations on a grid of 2**-16
ACT_LIMIT = 2.0 ** 27         # |activation| <= 2**27 grid steps (2048.0): a rail far above trained values
EXACT = 2.0 ** 52             # every partial sum stays below this: float64 integers are exact to 2**53
MAX_WEIGHT_BITS = 24
TIE_MARGIN = 1e-6             # in grid steps (a last-bit exp difference is under 1e-9 of one)


@dataclass(frozen=True)
class FixedLayer:
    """One convolution in fixed point: output = (sum of weight * input + bias) * 2**-(ACT_BITS + bits)."""

    transposed: bool
    weight: torch.Tensor      # float64 integers (torch's layout for the layer kind)
    bias: torch.Tensor        # float64 integers on the output grid
    bits: int                 # the weights' grid: 2**-bits
    stride: int
    padding: int
    output_padding: int
    slope: float | None       # LeakyReLU's negative slope after it, None for the last layer

    def to_dict(self) -> dict:
        """The layer's rule in plain numbers, for another program (the ONNX export's entropy.json;
        the integer weights and biases go beside it, in an .npz file)."""
        return {"transposed": self.transposed, "bits": self.bits, "stride": self.stride,
                "padding": self.padding, "output_padding": self.output_padding, "slope": self.slope,
                "weight_shape": list(self.weight.shape)}


def fixed_layers(h_s: nn.Sequential) -> list[FixedLayer]:
    """h_s (convolutions and transposed convolutions, each followed by a LeakyReLU but the last)
    on fixed-point grids. Each layer's weight grid is the finest that keeps every sum exact for
    any input within ACT_LIMIT: deterministic from the float32 weights alone."""
    layers: list[FixedLayer] = []
    modules = list(h_s)
    for i, m in enumerate(modules):
        if isinstance(m, nn.LeakyReLU):
            continue
        if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) or m.groups != 1 or m.dilation != (1, 1):
            raise ValueError(f"no fixed-point rule for {m}")
        following = modules[i + 1] if i + 1 < len(modules) else None
        if following is not None and not (isinstance(following, nn.LeakyReLU) and 0 <= following.negative_slope <= 1):
            raise ValueError(f"no fixed-point rule for {following} after a convolution")
        transposed = isinstance(m, nn.ConvTranspose2d)
        w = m.weight.detach().double().cpu()
        b = m.bias.detach().double().cpu() if m.bias is not None else torch.zeros(w.shape[1 if transposed else 0],
                                                                                 dtype=torch.float64)
        # |sum| <= ACT_LIMIT * sum|w| + |b| for each output channel, on the grid 2**-(ACT_BITS + bits)
        per_output = w.abs().sum(dim=(0, 2, 3) if transposed else (1, 2, 3))
        worst = float((per_output * ACT_LIMIT + b.abs() * 2.0 ** ACT_BITS).max())
        bits = min(MAX_WEIGHT_BITS, math.floor(math.log2(EXACT / max(worst, 1e-30))))
        layers.append(FixedLayer(
            transposed=transposed, weight=torch.round(w * 2.0 ** bits), bias=torch.round(b * 2.0 ** (ACT_BITS + bits)),
            bits=bits, stride=m.stride[0], padding=m.padding[0],
            output_padding=m.output_padding[0] if transposed else 0,
            slope=following.negative_slope if following is not None else None))
    return layers


def run(layers: list[FixedLayer], a: torch.Tensor) -> torch.Tensor:
    """The fixed-point network on activations `a` (float64 integers on the grid, (1, C, h, w));
    returns its output in real units, float64, the same bits on every machine. Not
    differentiable (it rounds), so it runs without autograd, whichever mode built the layers."""
    with torch.no_grad():
        return _run(layers, a)


def _run(layers: list[FixedLayer], a: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        if layer.transposed:
            acc = conv_transpose(a, layer.weight, layer.bias, layer.stride, layer.padding, layer.output_padding)
        else:
            acc = F.conv2d(a, layer.weight, layer.bias, stride=layer.stride, padding=layer.padding)
        if layer.slope is None:
            return acc * 2.0 ** -(ACT_BITS + layer.bits)
        # max(acc, slope * acc) is LeakyReLU for 0 <= slope <= 1 (checked in fixed_layers); in
        # place, each a single IEEE operation as before: at 12 MP fresh float64 maps cost more than the maths.
        torch.maximum(acc, acc * layer.slope, out=acc)
        a = acc.mul_(2.0 ** -layer.bits).add_(0.5).floor_().clamp_(-ACT_LIMIT, ACT_LIMIT)
    raise ValueError("a fixed-point network needs at least one layer")


def conv_transpose(a: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int, padding: int,
                   output_padding: int) -> torch.Tensor:
    """`F.conv_transpose2d`, computed as stride x stride ordinary convolutions, one per phase of
    the output grid: the same sums (exact here in any order), in float64 twice as fast, because
    torch's float64 transposed convolution has no fast kernel and its ordinary one runs on BLAS."""
    k = weight.shape[-1]
    h, w = a.shape[-2:]
    oh, ow = ((n - 1) * stride - 2 * padding + k + output_padding for n in (h, w))
    out = torch.empty(a.shape[0], weight.shape[1], oh, ow, dtype=a.dtype)

    def phase(r: int, n_in: int, n_out: int) -> tuple[int, int, int]:
        """First tap, and the input padding before and after (negative: a crop), of output phase r."""
        first = (r + padding) % stride
        taps = len(range(first, k, stride))
        before = taps - 1 - (r + padding - first) // stride
        return first, before, -(-(n_out - r) // stride) + taps - 1 - n_in - before

    for ry in range(stride):
        ky, top, bottom = phase(ry, h, oh)
        for rx in range(stride):
            kx, left, right = phase(rx, w, ow)
            x = F.pad(a, (max(left, 0), max(right, 0), max(top, 0), max(bottom, 0)))
            x = x[..., max(-top, 0):x.shape[-2] - max(-bottom, 0), max(-left, 0):x.shape[-1] - max(-right, 0)]
            out[..., ry::stride, rx::stride] = F.conv2d(x, weight[:, :, ky::stride, kx::stride].flip(2, 3).transpose(0, 1),
                                                        bias)
    return out


def inverse_gain_grid(log_inverse_gain: torch.Tensor, quality: float) -> tuple[np.ndarray, float]:
    """z's inverse gains at `quality` on the activation grid (float64 integers), and how close
    the nearest one came to a rounding tie (in grid steps): the log-gains of the two neighbouring
    levels interpolated in float64 (IEEE, the same everywhere), then `math.exp`."""
    table = log_inverse_gain.detach().double().cpu().numpy()
    pos = min(max(float(quality) - 1, 0.0), table.shape[0] - 1)
    low = min(int(math.floor(pos)), table.shape[0] - 2)
    t = pos - low
    scaled = np.array([math.exp(a * (1 - t) + b * t) for a, b in zip(table[low], table[low + 1])]) * 2.0 ** ACT_BITS
    margin = float(np.min(np.abs(scaled - np.floor(scaled) - 0.5)))
    return np.round(scaled), margin


def safe_quality(log_inverse_gain: torch.Tensor, quality: float, low: float, high: float) -> float:
    """`quality` (on the stream's 1/1000 grid), or the nearest grid value in [low, high] at which
    no inverse gain lies within TIE_MARGIN of a rounding tie: there, a libm whose exp differs in
    the last bit would round it the same way. Almost always `quality` itself."""
    step = 0
    while True:
        for q in ((quality,) if step == 0 else (quality + step / 1000, quality - step / 1000)):
            q = round(q * 1000) / 1000
            if low <= q <= high and inverse_gain_grid(log_inverse_gain, q)[1] > TIE_MARGIN:
                return q
        step += 1
        if step > 1000:
            raise ValueError(f"no quality near {quality} has safe gains")


def entropy_parameters(layers: list[FixedLayer], log_inverse_gain: torch.Tensor, z_symbols: torch.Tensor,
                       quality: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, scale) of y, float32, from round(z): what both encoder and decoder code with."""
    gains, _ = inverse_gain_grid(log_inverse_gain, quality)
    a = z_symbols.double() * torch.from_numpy(gains)[None, :, None, None]
    mean, scale = run(layers, a.clamp_(-ACT_LIMIT, ACT_LIMIT)).chunk(2, dim=1)
    return mean.float(), scale.abs().float()
