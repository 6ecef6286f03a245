"""bfloat16 where the CPU has it, float32 rounded like it where it does not.

The transforms code and train in bfloat16: about 2.5x faster than float32 on CPUs whose
oneDNN kernels support it (AVX-512 or AMX). On other CPUs (AVX2 only: many AMD EPYC and
older Intel machines) oneDNN falls back to reference kernels, and a 768x512 synthesis took
17 s instead of 0.4 s in float32. There training and the refinement loop run in float32,
and the coding transforms (the analysis, and a synthesis that a stream asks to run in
bfloat16) run `Bfloat16Rounded`: float32 kernels rounding to bfloat16 wherever the bfloat16
copy does. Its streams and decoded pixels matched a native bfloat16 run's bit for bit on the
test streams (`tests/data/streams`), at about float32's speed.

`AECORE_BFLOAT16=emulate` takes the float32 path on any CPU (to test it, or to compare).
"""
from __future__ import annotations

import contextlib
import copy
import functools
import os

import torch
from torch import nn
import torch.nn.functional as F

from .layers import GDN, lower_bound


@functools.cache
def native_bfloat16() -> bool:
    """Whether this CPU's oneDNN runs bfloat16 convolutions on fast kernels."""
    if os.environ.get("AECORE_BFLOAT16", "").strip().lower() == "emulate":
        return False
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_facts() -> dict:
    """What the benchmarks record beside their figures: the kernels torch picked and whether
    bfloat16 is native (coding and training are several times slower where it is not)."""
    return {"capability": torch.backends.cpu.get_cpu_capability(), "native_bfloat16": native_bfloat16()}


def compute_dtype(device: torch.device | str = "cpu") -> torch.dtype:
    """The dtype for transforms whose precision is free to choose (analysis, training, the
    refinement loop): bfloat16 on a GPU or a CPU with fast kernels for it, else float32."""
    return torch.bfloat16 if torch.device(device).type != "cpu" or native_bfloat16() else torch.float32


def emulated(dtype: torch.dtype) -> bool:
    """Whether a transform asked to run in `dtype` on the CPU runs `Bfloat16Rounded` instead."""
    return dtype == torch.bfloat16 and not native_bfloat16()


def autocast(device: torch.device | str):
    """torch.autocast to bfloat16 where that is fast (`compute_dtype`), else nothing."""
    device = torch.device(device)
    if compute_dtype(device) == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def round_bf16(x: torch.Tensor) -> torch.Tensor:
    """Rounds float32 to the nearest bfloat16, staying float32 (the gradient passes through)."""
    return x.to(torch.bfloat16).to(torch.float32)


class Bfloat16Rounded(nn.Module):
    """A float32 module that rounds as a bfloat16 copy of a transform does: bfloat16 weights
    and input, float32 accumulation inside each convolution, every operation's output rounded
    to bfloat16 (GDN's square, normalisation and product separately). The ONNX export's
    graphs and the decoder on CPUs without fast bfloat16 kernels both run it."""

    def __init__(self, fast: nn.Sequential):
        super().__init__()
        self.layers = copy.deepcopy(fast).float()
        for layer in self.layers:
            if isinstance(layer, GDN):  # the bounds GDN applies to its bfloat16 parameters
                layer.register_buffer("beta_bounded", lower_bound(layer.beta.detach(), 1e-6).float())
                layer.register_buffer("gamma_bounded", lower_bound(layer.gamma.detach(), 0.0).float()[:, :, None, None])

    def forward(self, x: torch.Tensor, stages: list | None = None) -> torch.Tensor:
        """`stages`, when given, receives the output of each max-pooling layer."""
        x = round_bf16(x.float())
        for layer in self.layers:
            if isinstance(layer, GDN):
                norm = round_bf16(F.conv2d(round_bf16(x * x), layer.gamma_bounded, layer.beta_bounded))
                x = round_bf16(round_bf16(torch.sqrt(norm) if layer.inverse else torch.rsqrt(norm)) * x)
            else:
                x = round_bf16(layer(x))
            if stages is not None and isinstance(layer, nn.MaxPool2d):
                stages.append(x)
        return x
