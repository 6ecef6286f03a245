"""ONNX export of a learned model, so that programs without aecore (or Python) can code .aec streams.

`export(name, folder)` writes the model's transforms as ONNX graphs and one JSON file
(`entropy.json`) with everything else a decoder needs: the gain tables of the continuous
quality, the entropy models' probability tables, the scale table, and the stream layout.
`docs/decode_onnx.py` decodes an .aec file with these files, onnxruntime, numpy and
constriction alone.

The graphs compute what aecore computes. The image transforms (analysis, synthesis) run in
bfloat16 in aecore (`CompressionModel._fast`), so their graphs take and give float32 but
round to bfloat16 wherever aecore's bfloat16 copy does (weights, and the output of every
operation), which brings the decoded pixels within one grey level of aecore's instead of
two. A model that decodes in float32 (`decode_dtype`: the seed) gets a plain float32
"synthesis" and, for its streams made before, "synthesis_bfloat16". The hyper transforms
run in float32, as in aecore, for streams of format versions 1 and 2; version 3 streams compute
the hyper synthesis in fixed point (`aecore.models.exact`), whose integer weights go into
HYPER_FILE, its rule into the JSON. Gains are not in the graphs: the
quality is continuous, so the JSON holds the per-level log-gains and the rule that
interpolates them.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
import warnings

import numpy as np
import torch
from torch import nn

from . import weights
from .models import exact
from .models.base import LATENT_FACTOR, CompressionModel
from .models.entropy import MAX_RADIUS, SCALE_MIN, SCALE_TABLE, TAIL_SIGMAS, gaussian_tables
from .models.precision import Bfloat16Rounded

FORMAT = "aecore-onnx"
FORMAT_VERSION = 1
OPSET = 17
TABLES_FILE = "entropy.json"
HYPER_FILE = "hyper_synthesis_fixed.npz"  # version 3's fixed-point h_s: weight_i, bias_i (int64) per layer
# The .aec container (aecore.bitstream), for readers without aecore.
CONTAINER = {
    "byte_order": "little-endian",
    "fields": [["magic", 4, "8b 41 45 43"], ["version", 1, "u8, 1, 2 or 3 (2: a metadata block follows the payload; 3: may follow it, "
                                  "and y's means and scales come from the fixed-point hyper synthesis)"], ["flags", 1, "u8, bit 0: grayscale source; bit 1: float32 synthesis (the graph 'synthesis'), "
                                    "else bfloat16 (the graph 'synthesis_bfloat16' where the export has one, else 'synthesis')"],
               ["name_length", 1, "u8 n"], ["name", "n", "ASCII model name"],
               ["weights_sha256_prefix", 8, "first 8 bytes of the weights' sha256"],
               ["height", 4, "u32"], ["width", 4, "u32"], ["quality", 2, "u16, quality * 1000"],
               ["tile", 2, "u16, synthesis tile in pixels"], ["sections", 1, "u8 k"],
               ["section_lengths", "4k", "u32 each"], ["payload", "sum of lengths", "the sections in order"],
               ["metadata", "to the CRC", "versions 2 and 3: EXIF, ICC profile, file name (see aecore/bitstream.py); "
                                          "not needed to decode the pixels"],
               ["crc32", 4, "u32, zlib CRC-32 of everything before it"]],
    "padding": "the image is coded padded to multiples of `stride` by repeating its last row and column",
    "latent_size": "ceil(height / stride) * stride / factor by ceil(width / stride) * stride / factor",
    "synthesis_tiles": ("the synthesis runs on tiles of tile / latent_factor latent pixels, each with "
                        "margin / latent_factor latent pixels of context, a single pass when the latent fits one tile"),
    "pixels": "round(clip(x_hat, 0, 1) * 255) cropped to height x width; grayscale: round(mean of R, G, B)",
}


class EntropyParameters(nn.Module):
    """The hyperprior's h_s with its output split into the Gaussian's mean and scale."""

    def __init__(self, model: CompressionModel):
        super().__init__()
        self.model = model

    def forward(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.entropy_parameters(z_hat)


def graphs(model: CompressionModel) -> dict:
    """{graph name: (module, input name, input channels, output names, input factor, output factor)}
    for the architecture; factors are 1/size relative to the padded image."""
    m, n = model.config.latent_channels, model.config.channels
    bfloat16_synthesis = Bfloat16Rounded(model.fast_copy(model.g_s))
    parts = {
        "analysis": (Bfloat16Rounded(model.fast_copy(model.g_a)), "x", 3, ["y"], 1, LATENT_FACTOR),
        "synthesis": (bfloat16_synthesis, "y_hat", m, ["x_hat"], LATENT_FACTOR, 1),
    }
    if model.decode_dtype == torch.float32:  # its streams decode in float32; older ones in bfloat16
        parts["synthesis"] = (copy.deepcopy(model.g_s).float(), "y_hat", m, ["x_hat"], LATENT_FACTOR, 1)
        parts["synthesis_bfloat16"] = (bfloat16_synthesis, "y_hat", m, ["x_hat"], LATENT_FACTOR, 1)
    if model.coded_latents == ("y", "z"):  # a hyperprior codes y given z
        parts["hyper_analysis"] = (model.h_a, "y", m, ["z"], LATENT_FACTOR, model.stride)
        parts["hyper_synthesis"] = (EntropyParameters(model), "z_hat", n, ["mean", "scale"], model.stride,
                                    LATENT_FACTOR)
    elif model.coded_latents != ("y",):
        raise ValueError(f"no ONNX export for architecture {model.arch!r}")
    return parts


def export_graph(module: nn.Module, path: Path, input_name: str, example: torch.Tensor, outputs: list[str]) -> None:
    """One graph with free batch, height and width. The TorchScript exporter (dynamo=False):
    it writes one self-contained file about ten times faster than the torch.export one, whose
    graphs agree with it (both checked against onnxruntime)."""
    axes = {input_name: {0: "batch", 2: "height", 3: "width"}}
    axes.update({name: {0: "batch", 2: "out_height", 3: "out_width"} for name in outputs})
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module.eval(), (example,), str(path), input_names=[input_name], output_names=outputs,
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)


def _f32(values) -> list:
    """float32 values as JSON numbers that parse back to the same float32 (float64 repr of each)."""
    return torch.as_tensor(values).float().double().tolist()


def tables(model: CompressionModel, card: dict, name: str) -> dict:
    """The JSON document: everything besides the graphs that decoding a stream of `name` needs."""
    arch = model.arch
    doc = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "model": name, "arch": arch,
        "weights_sha256": card["sha256"], "weights_sha256_prefix": card["sha256"][:16],
        "levels": model.levels, "quality_range": [1.0, float(model.levels)],
        "stride": model.stride, "latent_factor": LATENT_FACTOR, "margin": model.margin,
        "channels": model.config.channels, "latent_channels": model.config.latent_channels,
        "container": CONTAINER, "graphs": {}, "gains": {}, "latents": [],
        "quality_rule": ("quality q (the header's u16 / 1000) -> per-channel gains, in float32: "
                         "pos = clip(q - 1, 0, levels - 1); low = min(floor(pos), levels - 2); t = pos - low; "
                         "gain = exp(log_gain[low] * (1 - t) + log_gain[low + 1] * t)"),
        "coder": {
            "library": "constriction 0.5.0", "coder": "constriction.stream.stack.AnsCoder (32-bit words)",
            "model": "constriction.stream.model.Categorical(pmf, perfect=False) over symbols 0..len(pmf)-1",
            "section": "one AnsCoder's compressed words, uint32 little-endian; a well-formed section is "
                       "used up exactly (AnsCoder.is_empty() after the last symbol)",
            "symbol": "a coded value v is the symbol v + radius (values clipped to -radius..radius)",
        },
    }
    hyper = model.coded_latents == ("y", "z")
    gain_units = {"y": model.gain, "z": model.hyper_gain} if hyper else {"y": model.gain}
    for latent, units in gain_units.items():
        doc["gains"][latent] = {"log_gain": _f32(units.log_gain.detach()),
                                "log_inverse_gain": _f32(units.log_inverse_gain.detach())}
    if hyper:
        density = model.z_density
        doc["latents"] = [
            {"name": "z", "section": 0, "factor": model.stride, "channels": model.config.channels,
             "entropy_model": "factorized", "radius": density.radius,
             "pmf": density.pmf_table(density.radius).tolist(),
             "order": "channel after channel (channel c with pmf[c]), each in raster order",
             "decode": "z_hat = (symbol - radius) * inverse_gain_z(q)"},
            {"name": "y", "section": 1, "factor": LATENT_FACTOR, "channels": model.config.latent_channels,
             "entropy_model": "gaussian_conditional",
             "scale_table": _f32(SCALE_TABLE), "scale_min": SCALE_MIN, "tail_sigmas": TAIL_SIGMAS,
             "max_radius": MAX_RADIUS,
             "radii": [len(p) // 2 for p in gaussian_tables()], "pmfs": [p.tolist() for p in gaussian_tables()],
             "scale_index": ("the smallest i with scale <= scale_table[i] in float32 (numpy: "
                             "searchsorted(float32 table, float32 scale, side='left'), clipped to 0..63); "
                             "scale (and mean) from fixed_hyper_synthesis for version 3 streams, from the "
                             "hyper_synthesis graph for versions 1 and 2"),
             "order": ("the latent's C*h*w values (C, h, w raster order) sorted stably by scale index; "
                       "index i's values coded with pmfs[i] over -radii[i]..radii[i]"),
             "decode": "y_hat = ((symbol - radius) + mean) * inverse_gain_y(q)"},
        ]
        doc["fixed_hyper_synthesis"] = {
            "file": HYPER_FILE, "act_bits": exact.ACT_BITS, "act_limit": exact.ACT_LIMIT,
            "layers": [layer.to_dict() for layer in model.fixed_h_s()],
            "rule": ("float64 throughout, every value an integer until the last layer: "
                     "a = clip(z_symbol * round(2**act_bits * inverse_gain_z(q)), -act_limit, act_limit) with "
                     "inverse_gain_z(q) = exp(log_inverse_gain[low] * (1 - t) + log_inverse_gain[low + 1] * t) "
                     "in float64 (pos, low and t as in quality_rule, in float64); per layer acc = "
                     "conv(a, weight_i) + bias_i (conv_transpose when transposed); unless the last: "
                     "acc = acc * slope where acc < 0, a = clip(floor(acc * 2**-bits + 0.5), -act_limit, act_limit); "
                     "the last gives acc * 2**-(act_bits + bits), cast to float32: channels [0, C) the mean, "
                     "[C, 2C) the scale (its absolute value)")}
    else:
        density = model.y_density
        doc["latents"] = [
            {"name": "y", "section": 0, "factor": LATENT_FACTOR, "channels": model.config.latent_channels,
             "entropy_model": "factorized", "radius": density.radius,
             "pmf": density.pmf_table(density.radius).tolist(),
             "order": "channel after channel (channel c with pmf[c]), each in raster order",
             "decode": "y_hat = (symbol - radius) * inverse_gain_y(q)"}]
    return doc


def export(name: str, folder: str | Path) -> dict:
    """Writes NAME's graphs and entropy.json into `folder` (created); returns {file: bytes}."""
    folder = Path(folder)
    model, card = weights.load(name)
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    doc = tables(model, card, name)
    for graph, (module, input_name, channels, outputs, factor_in, factor_out) in graphs(model).items():
        example = torch.zeros(1, channels, max(1, 64 // factor_in), max(2, 128 // factor_in))  # traced; H, W free
        export_graph(module, folder / f"{graph}.onnx", input_name, example, outputs)
        doc["graphs"][graph] = {"file": f"{graph}.onnx", "input": input_name, "outputs": outputs,
                                "input_factor": factor_in, "output_factor": factor_out,
                                "arithmetic": "bfloat16-rounded" if isinstance(module, Bfloat16Rounded) else "float32"}
    if "fixed_hyper_synthesis" in doc:
        arrays = {}
        for i, layer in enumerate(model.fixed_h_s()):
            arrays[f"weight_{i}"] = layer.weight.to(torch.int64).numpy()
            arrays[f"bias_{i}"] = layer.bias.to(torch.int64).numpy()
        np.savez_compressed(folder / HYPER_FILE, **arrays)
    (folder / TABLES_FILE).write_text(json.dumps(doc))
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.name in
            {TABLES_FILE, HYPER_FILE, *(g["file"] for g in doc["graphs"].values())}}

