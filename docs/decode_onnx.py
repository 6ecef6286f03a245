"""Decodes an .aec stream without aecore: onnxruntime, numpy, constriction and Pillow only.

    python -m aecore export-onnx hyperprior onnx/          # once, with aecore
    python docs/decode_onnx.py onnx/ photo.aec photo.png    # anywhere, without it

A worked example of what README.md's "Decoding without aecore" section describes: the
container (entropy.json's "container"), the gains of the stream's quality, the entropy
decoders rebuilt from the JSON's tables, then hyper synthesis -> means and scales -> scale
indexes -> y -> synthesis, in tiles as the header says.

Version 3 streams (what aecore writes for a hyperprior) are decoded exactly: their means and
scales come from the hyper synthesis in fixed point, integers held in float64, which this
script computes with numpy (`fixed_hyper_synthesis`) to the same bits as aecore on any CPU.

Versions 1 and 2 took the scale index of each y value from a float32 network, and
onnxruntime's float32 sums differ from PyTorch's in the last bits, so a scale within about
1e-6 of a table entry may land on the other side of it (about one value in a Kodak photo). A
wrong index desynchronises the coder, which shows at the end of the section (it runs out of
words before the last symbol, or has some left over; see `read_section`); for those streams the
decoder then moves the values nearest to a table entry to their other index, one and then two
at a time, until the section decodes exactly.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path
import struct
import sys
import zlib

import constriction
import numpy as np
import onnxruntime
from PIL import Image

MAGIC = b"\x8bAEC"
NEAR = 1e-5      # relative distance to a table entry within which a scale index is in doubt
TRIES = 16       # the values most in doubt that the decoder may move to their other index


class StreamError(ValueError):
    pass


def parse(data: bytes) -> dict:
    """The container's header fields and sections (layout: entropy.json's "container")."""
    if data[:4] != MAGIC:
        raise StreamError("not an .aec stream")
    if len(data) < 4 + 3 + 8 + 13 + 4 or zlib.crc32(data[:-4]) != struct.unpack("<I", data[-4:])[0]:
        raise StreamError("checksum mismatch or truncated stream")
    version, flags, n = struct.unpack_from("<BBB", data, 4)
    if version not in (1, 2, 3):
        raise StreamError(f"format version {version}: this decoder reads versions 1 to 3")
    pos = 7
    name = data[pos:pos + n].decode("ascii")
    weights_prefix = data[pos + n:pos + n + 8].hex()
    pos += n + 8
    height, width, quality, tile, count = struct.unpack_from("<IIHHB", data, pos)
    pos += 13
    lengths = struct.unpack_from(f"<{count}I", data, pos)
    pos += 4 * count
    # versions 2 and 3 may put a metadata block (EXIF, ICC profile, file name) after the sections:
    # not needed here
    if pos + sum(lengths) + 4 != len(data) and not (version >= 2 and pos + sum(lengths) + 4 < len(data)):
        raise StreamError("section lengths do not match the stream size")
    sections = []
    for length in lengths:
        sections.append(data[pos:pos + length])
        pos += length
    return {"name": name, "weights_prefix": weights_prefix, "height": height, "width": width,
            "quality": quality / 1000, "tile": tile, "grayscale": bool(flags & 1),
            "float32_synthesis": bool(flags & 2), "exact_parameters": version >= 3, "sections": sections}


def gains(table: list, quality: float) -> np.ndarray:
    """(C, 1, 1) float32 gains: the log-gains of the two levels around `quality`, interpolated."""
    table = np.asarray(table, dtype=np.float32)
    pos = np.clip(np.float32(quality) - np.float32(1), np.float32(0), np.float32(len(table) - 1))
    low = min(int(np.floor(pos)), len(table) - 2)
    t = pos - np.float32(low)
    return np.exp(table[low] * (np.float32(1) - t) + table[low + 1] * t).astype(np.float32)[:, None, None]


def conv(a: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int, padding: int,
         transposed: bool, output_padding: int) -> np.ndarray:
    """One (transposed) convolution of a (C, h, w) float64 array as PyTorch defines it, one
    kernel tap at a time. Every value is an integer whose sums stay below 2**53, so float64
    adds them exactly in whatever order BLAS chooses."""
    k = weight.shape[-1]
    c, h, w = a.shape
    if transposed:  # weight (C_in, C_out, k, k): each input scattered to stride-spaced outputs
        oh, ow = (h - 1) * stride - 2 * padding + k + output_padding, (w - 1) * stride - 2 * padding + k + output_padding
        full = np.zeros((weight.shape[1], (h - 1) * stride + k + output_padding, (w - 1) * stride + k + output_padding))
        for ky in range(k):
            for kx in range(k):
                full[:, ky:ky + (h - 1) * stride + 1:stride, kx:kx + (w - 1) * stride + 1:stride] += \
                    np.tensordot(weight[:, :, ky, kx], a, axes=([0], [0]))
        out = full[:, padding:padding + oh, padding:padding + ow]
    else:  # weight (C_out, C_in, k, k)
        padded = np.pad(a, ((0, 0), (padding, padding), (padding, padding)))
        oh, ow = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
        out = np.zeros((weight.shape[0], oh, ow))
        for ky in range(k):
            for kx in range(k):
                out += np.tensordot(weight[:, :, ky, kx], padded[:, ky:ky + (oh - 1) * stride + 1:stride,
                                                                    kx:kx + (ow - 1) * stride + 1:stride], axes=([1], [0]))
    return out + bias[:, None, None]


def fixed_hyper_synthesis(folder: Path, spec: dict, z_symbols: np.ndarray, log_inverse_gain: list,
                          quality: float) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) of y, float32 (C, h, w), for a version 3 stream: entropy.json's
    "fixed_hyper_synthesis" rule, the same bits as aecore computes on any machine."""
    arrays = np.load(folder / spec["file"], allow_pickle=False)
    table = np.asarray(log_inverse_gain, dtype=np.float64)
    pos = min(max(quality - 1, 0.0), len(table) - 1)
    low = min(math.floor(pos), len(table) - 2)
    t = pos - low
    gains = np.round(np.array([math.exp(a * (1 - t) + b * t) for a, b in zip(table[low], table[low + 1])])
                     * 2.0 ** spec["act_bits"])
    limit = spec["act_limit"]
    a = np.clip(z_symbols.astype(np.float64) * gains[:, None, None], -limit, limit)
    for i, layer in enumerate(spec["layers"]):
        acc = conv(a, arrays[f"weight_{i}"].astype(np.float64), arrays[f"bias_{i}"].astype(np.float64),
                   layer["stride"], layer["padding"], layer["transposed"], layer["output_padding"])
        if layer["slope"] is None:
            out = (acc * 2.0 ** -(spec["act_bits"] + layer["bits"])).astype(np.float32)
            mean, scale = np.split(out, 2, axis=0)
            return mean, np.abs(scale)
        acc = np.where(acc < 0, acc * layer["slope"], acc)
        a = np.clip(np.floor(acc * 2.0 ** -layer["bits"] + 0.5), -limit, limit)
    raise StreamError("the export's fixed-point hyper synthesis has no layers")


def categorical(pmf) -> object:
    return constriction.stream.model.Categorical(np.asarray(pmf, dtype=np.float64), perfect=False)


def read_section(data: bytes, groups: list) -> np.ndarray | None:
    """Decodes one section: an ANS stack of 32-bit little-endian words holding, in order, each
    group's (count, radius, model) symbols. None unless it ends exactly with the last symbol.

    That check is what catches a wrong table: a decoder on the wrong path runs out of words
    early (constriction then decodes the lowest symbol from an empty state) or ends with
    words left over; checking only the end (AnsCoder.is_empty) misses the first case."""
    if len(data) % 4:
        raise StreamError("a section is not a whole number of 32-bit words")
    coder = constriction.stream.stack.AnsCoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
    groups = [g for g in groups if g[0]]
    if not groups:
        return np.zeros(0, dtype=np.int64) if coder.is_empty() else None
    parts = []
    for i, (count, radius, model) in enumerate(groups):
        if i == len(groups) - 1:  # the coder may be empty only after the very last symbol
            parts.append(coder.decode(model, count - 1).astype(np.int64) - radius if count > 1 else [])
            if coder.is_empty():
                return None
            count = 1
        parts.append(coder.decode(model, count).astype(np.int64) - radius)
    return np.concatenate(parts) if coder.is_empty() else None


def decode_factorized(data: bytes, latent: dict, shape: tuple[int, int, int], models: list) -> np.ndarray:
    """(C, h, w) integers coded channel after channel, each channel with its own table."""
    c, h, w = shape
    values = read_section(data, [(h * w, latent["radius"], models[i]) for i in range(c)])
    if values is None:
        raise StreamError(f"section {latent['section']} does not decode exactly (corrupt stream or other weights)")
    return values.reshape(c, h, w)


def scale_indexes(scale: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The smallest table index whose float32 scale is >= the value's (aecore's rule)."""
    return np.searchsorted(table, scale.astype(np.float32), side="left").clip(0, len(table) - 1)


def decode_gaussian(data: bytes, latent: dict, scale: np.ndarray, models: list, exact: bool) -> np.ndarray:
    """(C, h, w) integers coded in groups by scale index (raster order within each group);
    `exact`: the scales are the encoder's bit for bit, so no index is in doubt."""
    table = np.asarray(latent["scale_table"], dtype=np.float32)
    radii = latent["radii"]
    indexes = scale_indexes(scale, table).ravel()

    def attempt(indexes: np.ndarray):
        counts = np.bincount(indexes, minlength=len(table))
        decoded = read_section(data, [(int(n), radii[i], models[i]) for i, n in enumerate(counts)])
        if decoded is None:
            return None
        values = np.empty(indexes.size, dtype=np.int64)
        values[np.argsort(indexes, kind="stable")] = decoded
        return values

    values = attempt(indexes)
    if values is None and exact:
        raise StreamError(f"section {latent['section']} does not decode exactly (corrupt stream or other weights)")
    if values is None:
        values = resolve(attempt, indexes, scale.ravel().astype(np.float32), table)
    return values.reshape(scale.shape)


def resolve(attempt, indexes: np.ndarray, scale: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Moves the values whose scales lie nearest a table entry to the index on its other side,
    one and then two at a time, until the section decodes exactly (see the module's notes).
    Only the counts per index change the coder's path, so each count vector is tried once."""
    above = np.abs(scale / table[np.clip(indexes - 1, 0, None)] - 1)  # just above entry i - 1: maybe i - 1
    below = np.abs(scale / table[indexes] - 1)                       # at or just below entry i: maybe i + 1
    other = np.where(above < below, indexes - 1, indexes + 1)
    distance = np.minimum(above, below)
    valid = (other >= 0) & (other < len(table)) & (distance < NEAR)
    doubt = [i for i in np.argsort(distance) if valid[i]][:TRIES]
    tried = set()
    for size in (1, 2):
        for chosen in itertools.combinations(doubt, size):
            moved = indexes.copy()
            moved[list(chosen)] = other[list(chosen)]
            key = tuple(sorted((int(indexes[i]), int(other[i])) for i in chosen))
            if key in tried:
                continue
            tried.add(key)
            values = attempt(moved)
            if values is not None:
                print(f"decode_onnx: {size} scale index(es) of {len(doubt)} in doubt moved, after {len(tried)} "
                      f"tries", file=sys.stderr)
                return values
    raise StreamError(f"the y section does not decode with any of {len(tried)} readings of the "
                      f"{len(doubt)} scale indexes in doubt (corrupt stream or other weights)")


def synthesis(session, y_hat: np.ndarray, tile: int, margin: int, factor: int) -> np.ndarray:
    """The synthesis graph over (1, C, h, w), in tiles of `tile` latent pixels with `margin` of context:
    the tiling of aecore.models.base.tiled, restated here because this script stands alone."""
    run = lambda part: session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(part)})[0]  # noqa: E731
    h, w = y_hat.shape[-2:]
    if h <= tile and w <= tile:
        return run(y_hat)
    out = None
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            cy0, cx0 = max(0, y0 - margin), max(0, x0 - margin)
            part = run(y_hat[..., cy0:min(h, y1 + margin), cx0:min(w, x1 + margin)])
            if out is None:
                out = np.empty((*part.shape[:2], h * factor, w * factor), dtype=part.dtype)
            out[..., y0 * factor:y1 * factor, x0 * factor:x1 * factor] = \
                part[..., (y0 - cy0) * factor:(y1 - cy0) * factor, (x0 - cx0) * factor:(x1 - cx0) * factor]
    return out


def decode(folder: Path, data: bytes) -> np.ndarray:
    """An .aec stream -> (H, W, 3) or (H, W) uint8 pixels, using the export in `folder`."""
    doc = json.loads((folder / "entropy.json").read_text())
    stream = parse(data)
    if stream["weights_prefix"] != doc["weights_sha256_prefix"]:
        raise StreamError(f"stream was made by weights {stream['name']!r} ({stream['weights_prefix']}), "
                          f"not by the exported {doc['model']!r} ({doc['weights_sha256_prefix']})")
    latents = {latent["name"]: latent for latent in doc["latents"]}
    if len(stream["sections"]) != len(latents):
        raise StreamError(f"{doc['arch']} streams have {len(latents)} sections, not {len(stream['sections'])}")
    options = onnxruntime.SessionOptions()
    session = lambda graph: onnxruntime.InferenceSession(  # noqa: E731
        str(folder / doc["graphs"][graph]["file"]), options, providers=["CPUExecutionProvider"])
    stride, q = doc["stride"], stream["quality"]
    padded = (-(-stream["height"] // stride) * stride, -(-stream["width"] // stride) * stride)
    shape = lambda latent: (latent["channels"], padded[0] // latent["factor"], padded[1] // latent["factor"])  # noqa: E731
    y = latents["y"]
    if "z" in latents:  # a hyperprior: z first, then y given the means and scales z predicts
        z = latents["z"]
        z_symbols = decode_factorized(stream["sections"][z["section"]], z, shape(z), [categorical(p) for p in z["pmf"]])
        if stream["exact_parameters"]:
            mean, scale = fixed_hyper_synthesis(folder, doc["fixed_hyper_synthesis"], z_symbols,
                                                doc["gains"]["z"]["log_inverse_gain"], q)
        else:
            z_hat = (z_symbols.astype(np.float32) * gains(doc["gains"]["z"]["log_inverse_gain"], q))[None]
            mean, scale = (out[0] for out in session("hyper_synthesis").run(None, {"z_hat": z_hat}))
        symbols = decode_gaussian(stream["sections"][y["section"]], y, scale, [categorical(p) for p in y["pmfs"]],
                                  exact=stream["exact_parameters"])
        y_hat = (symbols.astype(np.float32) + mean) * gains(doc["gains"]["y"]["log_inverse_gain"], q)
    else:
        symbols = decode_factorized(stream["sections"][y["section"]], y, shape(y), [categorical(p) for p in y["pmf"]])
        y_hat = symbols.astype(np.float32) * gains(doc["gains"]["y"]["log_inverse_gain"], q)
    factor = doc["latent_factor"]
    # float32 streams (flag bit 1) and bfloat16 ones of a model that has both graphs
    graph = "synthesis_bfloat16" if not stream["float32_synthesis"] and "synthesis_bfloat16" in doc["graphs"] \
        else "synthesis"
    x_hat = synthesis(session(graph), y_hat[None].astype(np.float32), stream["tile"] // factor,
                      doc["margin"] // factor, factor)
    x_hat = x_hat[0, :, :stream["height"], :stream["width"]]
    rgb = np.round(np.clip(x_hat, 0, 1) * np.float32(255)).astype(np.uint8).transpose(1, 2, 0)
    if stream["grayscale"]:
        return np.round(rgb.mean(axis=2)).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", help="folder written by python -m aecore export-onnx")
    parser.add_argument("input", help=".aec stream")
    parser.add_argument("output", help="PNG to write")
    args = parser.parse_args(argv)
    try:
        pixels = decode(Path(args.export), Path(args.input).read_bytes())
    except (StreamError, OSError) as e:
        print(f"decode_onnx: {args.input}: {e}", file=sys.stderr)
        return 2
    Image.fromarray(pixels).save(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
