"""Fixed-point entropy parameters (format version 3): the same bits whatever sums them, close to
the float network they stand for, and streams that decode on another CPU's kernels."""
from __future__ import annotations

import math
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aecore import bitstream
from aecore.models import exact
from aecore.models.entropy import fixed_threads
from tests.conftest import make_tiny

REPO = Path(__file__).resolve().parent.parent


def symbols_of(model, quality: float, seed: int = 0) -> torch.Tensor:
    """round(z) of a real photo crop at `quality`: what the hyper synthesis codes from."""
    from skimage.data import astronaut
    x = torch.from_numpy(np.ascontiguousarray(astronaut()[seed * 40:seed * 40 + 150, 100:330]))
    x = model.pad(x.permute(2, 0, 1)[None].float().div(255))
    with torch.inference_mode():
        q = model.quality_tensor(quality, 1)
        z = model.h_a(model.analysis(x) * model.gain.gain(q)) * model.hyper_gain.gain(q)
    return torch.round(z).clamp(-model.z_density.radius, model.z_density.radius)


def numpy_run(layers, a: np.ndarray) -> np.ndarray:
    """`exact.run` restated in numpy with another summation order: input channels summed last,
    from the highest down, each tap's products formed by broadcasting."""
    for layer in layers:
        w, k, s, p = layer.weight.numpy(), layer.weight.shape[-1], layer.stride, layer.padding
        c, h, wd = a.shape
        if layer.transposed:
            size = ((h - 1) * s + k + layer.output_padding, (wd - 1) * s + k + layer.output_padding)
            full = np.zeros((w.shape[1], *size))
            for i in reversed(range(c)):
                for ky in range(k):
                    for kx in range(k):
                        full[:, ky:ky + (h - 1) * s + 1:s, kx:kx + (wd - 1) * s + 1:s] += w[i, :, ky, kx, None, None] * a[i]
            acc = full[:, p:p + (h - 1) * s - 2 * p + k + layer.output_padding,
                       p:p + (wd - 1) * s - 2 * p + k + layer.output_padding]
        else:
            padded = np.pad(a, ((0, 0), (p, p), (p, p)))
            oh, ow = (h + 2 * p - k) // s + 1, (wd + 2 * p - k) // s + 1
            acc = np.zeros((w.shape[0], oh, ow))
            for i in reversed(range(c)):
                for ky in range(k):
                    for kx in range(k):
                        acc += w[:, i, ky, kx, None, None] * padded[i, ky:ky + (oh - 1) * s + 1:s, kx:kx + (ow - 1) * s + 1:s]
        acc = acc + layer.bias.numpy()[:, None, None]
        if layer.slope is None:
            return acc * 2.0 ** -(exact.ACT_BITS + layer.bits)
        acc = np.where(acc < 0, acc * layer.slope, acc)
        a = np.clip(np.floor(acc * 2.0 ** -layer.bits + 0.5), -exact.ACT_LIMIT, exact.ACT_LIMIT)
    raise AssertionError("no layers")


@pytest.mark.parametrize("name", ["tiny-hyper", "tiny-seedhp"])
def test_fixed_point_sums_give_the_same_bits_in_any_order(name):
    model = make_tiny(name)
    layers = exact.fixed_layers(model.h_s)
    z = torch.randint(-30, 31, (1, model.config.channels, 5, 7), generator=torch.Generator().manual_seed(1)).double()
    gains, _ = exact.inverse_gain_grid(model.hyper_gain.log_inverse_gain, 3.0)
    a = z.double() * torch.from_numpy(gains)[None, :, None, None]
    with fixed_threads():
        ours = exact.run(layers, a)[0].numpy()
    theirs = numpy_run(layers, a[0].numpy())
    assert ours.tobytes() == theirs.tobytes()


@pytest.mark.shipped
def test_fixed_point_stands_for_the_trained_float_network():
    """On the shipped weights the fixed-point means and scales lie within float32 noise of the
    float network's (within a few thousandths), and every partial sum provably stays exact (the per-layer bound)."""
    from aecore.weights import load
    model, _ = load("hyperprior")
    layers = model.fixed_h_s()
    for layer in layers:  # the bound the grids were chosen by: ACT_LIMIT * sum|w| + |b| < 2**52
        dims = (0, 2, 3) if layer.transposed else (1, 2, 3)
        worst = (layer.weight.abs().sum(dim=dims) * exact.ACT_LIMIT + layer.bias.abs()).max()
        assert worst < exact.EXACT and layer.bits >= 12
    for quality in (1.0, 5.5, float(model.levels)):
        z = symbols_of(model, quality)
        with torch.inference_mode():
            mean, scale = model.coding_parameters(z, quality)
            want_mean, want_scale = model.coding_parameters(z, quality, exact_parameters=False)
        assert (mean - want_mean).abs().max() < 5e-3  # y symbols are round(y - mean): a mean this close
        assert ((scale - want_scale).abs() / want_scale.clamp(min=0.1)).max() < 5e-3  # changes almost none


def test_a_quality_at_a_rounding_tie_is_nudged_to_a_safe_neighbour():
    """An inverse gain on the activation grid's half-way point would round either way under a
    libm whose exp differs in the last bit: the encoder moves the quality by 1/1000 steps."""
    tie = math.log((12345 + 0.5) / 2 ** exact.ACT_BITS)
    table = torch.tensor([[tie, -1.0], [tie + 0.001, -0.5], [tie + 0.002, 0.0]], dtype=torch.float64)
    assert exact.inverse_gain_grid(table, 1.0)[1] < exact.TIE_MARGIN
    safe = exact.safe_quality(table, 1.0, 1.0, 3.0)
    assert safe != 1.0 and abs(safe - 1.0) <= 0.01 and exact.inverse_gain_grid(table, safe)[1] > exact.TIE_MARGIN
    assert exact.safe_quality(table, 2.5, 1.0, 3.0) == 2.5  # away from the tie: unchanged


def test_version_3_header_round_trips_with_and_without_metadata():
    from aecore.metadata import Metadata
    header = bitstream.Header(model="m", weights_hash=b"12345678", height=5, width=7, quality=2.5, tile=256,
                              exact_parameters=True)
    for metadata in (Metadata(), Metadata(name="a.png")):
        data = bitstream.pack(bitstream.Header(**{**header.__dict__, "metadata": metadata}), [b"abcd", b"efgh"])
        assert data[4] == bitstream.EXACT_VERSION
        got, sections = bitstream.unpack(data)
        assert got.exact_parameters and got.metadata == metadata and sections == [b"abcd", b"efgh"]
        assert got.to_dict()["entropy_parameters"] == "fixed point"
    assert not bitstream.unpack(bitstream.pack(bitstream.Header(**{**header.__dict__, "exact_parameters": False}),
                                               [b"abcd"]))[0].exact_parameters


DECODE_ELSEWHERE = """
import sys, numpy as np, torch
from aecore.codecs import get_codec
codec = get_codec(sys.argv[1])
for path in sys.argv[2:]:
    np.save(path + '.npy', codec.decode(open(path, 'rb').read()))
"""


@pytest.mark.shipped
def test_streams_decode_in_a_process_held_to_avx2_kernels(tmp_path):
    """What a machine without AVX-512 computes: oneDNN and ATen held to their AVX2 kernels
    (on an AVX2-only machine both sides run the same kernels and this checks determinism alone).
    The y symbols decode exactly, so the pixels differ only by the synthesis' bfloat16 sums."""
    from aecore.codecs import get_codec
    from skimage.data import chelsea
    codec = get_codec("hyperprior")
    image = np.ascontiguousarray(chelsea())
    paths = []
    for quality in (1.0, 2.7, 4.0):
        data = codec.encode(image, quality)
        assert bitstream.unpack(data)[0].version == bitstream.EXACT_VERSION
        path = tmp_path / f"q{quality}.aec"
        path.write_bytes(data)
        paths.append((path, codec.decode(data)))
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", DECODE_ELSEWHERE, "hyperprior", *(str(p) for p, _ in paths)],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for path, ours in paths:
        theirs = np.load(str(path) + ".npy")
        assert np.abs(theirs.astype(int) - ours).max() <= 1, path.name


@pytest.mark.parametrize("h, w, k, stride, padding, output_padding",
                         [(5, 7, 5, 2, 2, 1), (6, 3, 3, 2, 1, 1), (1, 1, 5, 2, 2, 1), (7, 5, 4, 2, 1, 0), (5, 4, 3, 3, 1, 2)])
def test_transposed_convolution_by_phases_is_torchs(h, w, k, stride, padding, output_padding):
    g = torch.Generator().manual_seed(h * 31 + w)
    a = torch.randint(-50, 51, (1, 3, h, w), generator=g).double()
    weight = torch.randint(-9, 10, (3, 4, k, k), generator=g).double()
    bias = torch.randint(-9, 10, (4,), generator=g).double()
    want = F.conv_transpose2d(a, weight, bias, stride=stride, padding=padding, output_padding=output_padding)
    assert torch.equal(exact.conv_transpose(a, weight, bias, stride, padding, output_padding), want)
