"""Entropy models: each one gives the training likelihoods and codes its own symbols.

Two models, as in Balle et al. 2018 and Minnen et al. 2018:
- `FactorizedDensity`: a learned, per-channel density for latents with no side
  information (the hyperprior's z, the seed model's y);
- `GaussianConditional`: a Gaussian with predicted mean and scale (the hyperprior's y).

Both follow CompressAI's contract, with the conditioning parameters (none for the
factorized density; `mean` and `scale` for the Gaussian) passed by keyword to every call:

    likelihood(values, **params) -> likelihoods      (training loss, rate estimates)
    compress(symbols, **params) -> bytes            (one entropy-coded section)
    decompress(data, shape, **params) -> values     (the decoder's dequantized latent)
    dequantize(symbols, **params) -> values         (what the decoder gets, on the encoder side)

Symbols and values are (1, C, h, w) tensors; `shape` is (C, h, w).

For coding, every distribution becomes a fixed probability table computed in float64
from the weights alone, so encoder and decoder build bit-identical tables. Gaussian
scales are snapped to `SCALE_TABLE` and symbols are `round(y - mean)`: the means only
move the reconstruction, they never reach the entropy coder (constriction silently
garbles symbols when the two sides' parameters differ in the last bit).
"""
from __future__ import annotations

import functools
import math
import threading

import constriction
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

LIKELIHOOD_BOUND = 1e-9
SCALE_MIN = 0.11
# 64 log-spaced scales from SCALE_MIN to 256 (the table CompressAI uses for its models).
SCALE_TABLE = np.exp(np.linspace(math.log(SCALE_MIN), math.log(256.0), 64))
# A symbol is clipped to +-TAIL_SIGMAS standard deviations of its table entry.
TAIL_SIGMAS = 16.0
MAX_RADIUS = 2048


def weights_version(module: nn.Module) -> tuple:
    """Changes whenever `module`'s weights do: parameter version counters move on every in-place
    update (optimizer steps, load_state_dict), so tables keyed on it are never stale."""
    return tuple((id(p), p._version) for p in module.parameters())


class FactorizedDensity(nn.Module):
    """Per-channel univariate density as a small monotonic network (Balle 2018, App. 6.1).

    The network maps a value to the logit of its cumulative distribution; the likelihood
    of an integer-quantized value v is cdf(v + 1/2) - cdf(v - 1/2).
    """

    def __init__(self, channels: int, radius: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.radius = radius  # coding tables cover the integers -radius..radius; symbols beyond are clipped
        self._tables: tuple | None = None
        dims = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            # uniform_, not rand() - 0.5 (the same numbers): no tensor arithmetic on the meta device
            self.biases.append(nn.Parameter(torch.empty(channels, dims[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def _logits_cdf(self, x: torch.Tensor) -> torch.Tensor:
        # x: (C, 1, N) -> (C, 1, N)
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(matrix.to(x.dtype)), x) + bias.to(x.dtype)
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i].to(x.dtype)) * torch.tanh(x)
        return x

    def _interval(self, x: torch.Tensor) -> torch.Tensor:
        lower = self._logits_cdf(x - 0.5)
        upper = self._logits_cdf(x + 0.5)
        # Subtract in the tail where it is accurate (the sigmoid's smaller side).
        sign = -torch.sign(lower + upper).detach()
        return (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()

    def likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) float32 values (noisy or rounded) -> likelihoods, same shape."""
        b, c, h, w = x.shape
        flat = x.float().permute(1, 0, 2, 3).reshape(c, 1, -1)
        lik = self._interval(flat).reshape(c, b, h, w).permute(1, 0, 2, 3)
        return lik.clamp_min(LIKELIHOOD_BOUND)

    def dequantize(self, symbols: torch.Tensor) -> torch.Tensor:
        return symbols.float()

    def compress(self, symbols: torch.Tensor) -> bytes:
        """(1, C, h, w) integers -> one ANS section, one channel after another."""
        writer = SymbolWriter()
        for channel, model in zip(symbols[0].long().numpy(), self.coding_tables()):
            writer.add(channel, self.radius, model)
        return writer.getvalue()

    def decompress(self, data: bytes, shape: tuple[int, int, int]) -> torch.Tensor:
        c, h, w = shape
        tables = self.coding_tables()
        if c > len(tables):
            raise ValueError(f"{c} channels asked of a density over {len(tables)}")
        reader = SymbolReader(data)
        symbols = np.stack([reader.read(h * w, self.radius, m).reshape(h, w) for m in tables[:c]])
        reader.finish()
        return self.dequantize(torch.from_numpy(symbols)[None])

    def coding_tables(self) -> list:
        """One constriction model per channel, from `pmf_table` (float64, fixed threads: identical
        on both sides), rebuilt whenever the weights change (see `weights_version`)."""
        key = weights_version(self)
        if self._tables is None or self._tables[0] != key:
            with fixed_threads():
                self._tables = (key, [categorical(p) for p in self.pmf_table(self.radius)])
        return self._tables[1]

    @torch.no_grad()
    def pmf_table(self, radius: int) -> np.ndarray:
        """(C, 2*radius+1) float64 probabilities of the integers -radius..radius.

        The tails beyond the range are folded into the two end bins, so clipping a
        symbol to the range keeps its probability mass.
        """
        c = self.matrices[0].shape[0]
        values = torch.arange(-radius, radius + 1, dtype=torch.float64)
        upper = torch.sigmoid(self._logits_cdf(values.add(0.5).expand(c, 1, -1)))[:, 0]
        lower = torch.sigmoid(self._logits_cdf(values.sub(0.5).expand(c, 1, -1)))[:, 0]
        pmf = (upper - lower).clamp_min(0)
        pmf[:, 0] += lower[:, 0]
        pmf[:, -1] += 1 - upper[:, -1]
        return pmf.numpy()


_TABLE32 = SCALE_TABLE.astype(np.float32)
# Where each bucket of float32 values sharing their top 16 bits (sign, exponent, 7 mantissa
# bits) starts in the table. A bucket is under 1% wide and the table's steps are 13%, so
# one comparison finishes the search: a few ms instead of a binary search per value.
_BUCKET_START = np.searchsorted(
    _TABLE32, (np.arange(1 << 16, dtype=np.uint32) << 16).view(np.float32), side="left").clip(0, len(_TABLE32) - 1)


def scale_indexes(scale: np.ndarray) -> np.ndarray:
    """Index of the smallest table scale >= scale (the coder rounds scales up), as uint8
    (numpy radix-sorts 8-bit keys). Exactly np.searchsorted(float32 table, scale)."""
    scale = np.ascontiguousarray(scale, dtype=np.float32)
    idx = _BUCKET_START[scale.view(np.uint32) >> 16]
    idx += scale > _TABLE32[idx]
    return idx.clip(0, len(SCALE_TABLE) - 1).astype(np.uint8)


_ERF, _ERFC = np.frompyfunc(math.erf, 1, 1), np.frompyfunc(math.erfc, 1, 1)


def ndtr(x: np.ndarray) -> np.ndarray:
    """The standard normal CDF in float64, by Cephes' formula (scipy.special.ndtr's) on the C
    library's erf and erfc: the coding tables it gives are those of scipy's, without importing
    scipy (about half a second of every learned command's start)."""
    z = np.asarray(x, dtype=np.float64) * math.sqrt(0.5)
    out = np.empty_like(z)
    near = np.abs(z) < math.sqrt(0.5)
    out[near] = 0.5 + 0.5 * _ERF(z[near]).astype(np.float64)
    tail = 0.5 * _ERFC(np.abs(z[~near])).astype(np.float64)
    out[~near] = np.where(z[~near] > 0, 1.0 - tail, tail)
    return out


def gaussian_tables() -> list[np.ndarray]:
    """One pmf over -r..r per entry of SCALE_TABLE, tails folded into the end bins."""
    tables = []
    for s in SCALE_TABLE:
        r = int(min(MAX_RADIUS, max(2, math.ceil(TAIL_SIGMAS * s))))
        k = np.arange(-r, r + 1, dtype=np.float64)
        cdf_hi, cdf_lo = ndtr((k + 0.5) / s), ndtr((k - 0.5) / s)
        pmf = cdf_hi - cdf_lo
        pmf[0] += cdf_lo[0]
        pmf[-1] += 1 - cdf_hi[-1]
        tables.append(pmf)
    return tables


class GaussianConditional:
    """y ~ N(mean, scale) convolved with a unit box, for latents whose parameters come from side
    information. Coded as round(y - mean) with the fixed table of the scale's index, so only the
    scale indexes (bit-exact by `scale_indexes`) must agree between encoder and decoder."""

    _tables: list = []  # (radius, constriction model) per entry of SCALE_TABLE, built once per process

    def likelihood(self, values: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """float32 likelihoods of `values`, the same shape."""
        v = (values.float() - mean.float()).abs()
        scale = scale.float().clamp_min(SCALE_MIN)
        lik = torch.special.ndtr((0.5 - v) / scale) - torch.special.ndtr((-0.5 - v) / scale)
        return lik.clamp_min(LIKELIHOOD_BOUND)

    def dequantize(self, symbols: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        return symbols.float() + mean

    def compress(self, symbols: torch.Tensor, scale: torch.Tensor, mean: torch.Tensor | None = None) -> bytes:
        """(1, C, h, w) integers round(y - mean) -> one ANS section (the mean is not needed: it
        never reaches the coder). Grouped by scale index: one vectorized call per table in use."""
        indexes = scale_indexes(scale[0].numpy())
        order, counts = self._grouping(indexes)
        sorted_symbols = symbols[0].long().numpy().ravel()[order]
        writer, start = SymbolWriter(), 0
        for (radius, model), n in zip(self.coding_tables(), counts):
            writer.add(sorted_symbols[start:start + n], radius, model)
            start += n
        return writer.getvalue()

    def decompress(self, data: bytes, shape: tuple[int, int, int], mean: torch.Tensor,
                   scale: torch.Tensor) -> torch.Tensor:
        indexes = scale_indexes(scale[0].numpy())
        if indexes.shape != tuple(shape):
            raise ValueError(f"latent of shape {tuple(shape)} has scales of shape {indexes.shape}")
        order, counts = self._grouping(indexes)
        reader = SymbolReader(data)
        parts = [reader.read(n, radius, model) for (radius, model), n in zip(self.coding_tables(), counts)]
        reader.finish()
        symbols = np.empty(indexes.size, dtype=np.int64)
        symbols[order] = np.concatenate(parts)
        return self.dequantize(torch.from_numpy(symbols.reshape(indexes.shape))[None], mean)

    @staticmethod
    def _grouping(indexes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The order that sorts values by scale index (stable), and how many use each index."""
        return np.argsort(indexes.ravel(), kind="stable"), np.bincount(indexes.ravel(), minlength=len(SCALE_TABLE))

    @classmethod
    def coding_tables(cls) -> list:
        """(radius, constriction model) per scale of SCALE_TABLE: fixed, from the table alone."""
        if not cls._tables:
            cls._tables.extend((len(p) // 2, categorical(p)) for p in gaussian_tables())
        return cls._tables


def categorical(pmf: np.ndarray):
    """A fixed constriction model over 0..len(pmf)-1."""
    return constriction.stream.model.Categorical(pmf, perfect=False)


class SymbolWriter:
    """Collects (symbols, model) chunks and writes them as one ANS stream.

    ANS is a stack: chunks are encoded last-first so `SymbolReader` reads them in order.
    """

    def __init__(self):
        self._chunks = []

    def add(self, symbols: np.ndarray, radius: int, model) -> None:
        """symbols: integers, clipped to -radius..radius before coding."""
        idx = (np.clip(symbols, -radius, radius) + radius).astype(np.int32).ravel()
        if idx.size:
            self._chunks.append((idx, model))

    def getvalue(self) -> bytes:
        coder = constriction.stream.stack.AnsCoder()
        for idx, model in reversed(self._chunks):
            coder.encode_reverse(idx, model)
        return coder.get_compressed().astype("<u4").tobytes()


class SymbolReader:
    """Reads the chunks a `SymbolWriter` wrote, in the same order, checking that the section is
    used up exactly: the coder is empty (no words left, its state back at the initial value)
    after the very last symbol and never before it.

    Both halves are needed. An altered section often runs out of words early, and constriction
    then goes on decoding the lowest symbol from the empty state, so a check at the end alone
    passes it. The coder stays empty once empty, so checking before the last symbol of every
    chunk sees any early end."""

    def __init__(self, data: bytes):
        if len(data) % 4:
            raise ValueError("entropy-coded section is not a whole number of 32-bit words")
        self._coder = constriction.stream.stack.AnsCoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))

    def read(self, count: int, radius: int, model) -> np.ndarray:
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        head = self._coder.decode(model, count - 1) if count > 1 else np.zeros(0, dtype=np.int32)
        if self._coder.is_empty():
            raise ValueError("entropy-coded section ends before its last symbol")
        last = self._coder.decode(model, 1)
        return np.concatenate([head, last]).astype(np.int64) - radius

    def finish(self) -> None:
        """A well-formed section is used up exactly; anything else means corruption."""
        if not self._coder.is_empty():
            raise ValueError("entropy-coded section has data left over")


CODING_THREADS = 2
_coding_lock = threading.RLock()


class fixed_threads:
    """Runs coding on a fixed torch thread count, whatever the caller's setting.

    Convolutions on CPU are not bitwise equal across thread counts (oneDNN partitions
    the work differently), and entropy coding needs the two sides to agree bit for bit,
    so compress and decompress always run on CODING_THREADS. The thread count is
    process-wide, hence the lock (the app codes from several sessions' threads).
    """

    def __enter__(self):
        _coding_lock.acquire()
        self._threads = torch.get_num_threads()
        torch.set_num_threads(CODING_THREADS)

    def __exit__(self, *exc):
        torch.set_num_threads(self._threads)
        _coding_lock.release()


def deterministic(method):
    """Decorator for compress/decompress: inference mode on the fixed thread count."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with fixed_threads(), torch.inference_mode():
            return method(*args, **kwargs)
    return wrapper
