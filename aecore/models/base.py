"""What every learned architecture shares: config, registry, rate levels, padding."""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
import math
import time

import torch
from torch import nn
import torch.nn.functional as F

from .. import registry
from .entropy import FactorizedDensity, deterministic, weights_version
from .layers import GDN, GainUnits, SubpixelConv
from . import precision
from .precision import Bfloat16Rounded


LEVELS = 8  # rate levels of a new model; a trained model's count is `len(config.lambdas)` (its `levels`)


def lambda_ladder(low: float, high: float, levels: int = LEVELS) -> tuple[float, ...]:
    """Geometric rate-distortion trade-offs from quality 1 (low) to the top level (high)."""
    ratio = (high / low) ** (1 / (levels - 1))
    return tuple(round(low * ratio ** i, 6) for i in range(levels))



def quality_lambda(lambdas, quality: float) -> float:
    """The trade-off of a continuous quality: log-lambda interpolated between the two
    neighbouring levels, as the gain units interpolate their log-gains."""
    pos = min(max(float(quality) - 1, 0.0), len(lambdas) - 1)
    low = min(int(math.floor(pos)), len(lambdas) - 2)
    t = pos - low
    return math.exp(math.log(lambdas[low]) * (1 - t) + math.log(lambdas[low + 1]) * t)

# Trade-offs of the quality levels (loss = bpp + lambda * 255^2 * MSE), chosen so that
# quality 1..LEVELS spans about 0.15 to 1.3 bpp on Kodak.
LAMBDAS = lambda_ladder(0.0006, 0.06)


@dataclass
class ModelConfig:
    arch: str = "hyperprior"
    channels: int = 128          # N: width of the transforms (and of z for the hyperprior)
    latent_channels: int = 192   # M: channels of the coded latent y
    lambdas: tuple[float, ...] = LAMBDAS
    z_radius: int = 128          # factorized tables cover integers -r..r (clipped beyond)
    y_radius: int = 1024         # the seed model's factorized y
    depth: int = 1               # the seed model's convolutions per resolution stage

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "lambdas" in known:
            known["lambdas"] = tuple(known["lambdas"])
        return cls(**known)


# Transforms run on tiles of at most TILE x TILE pixels, so any photo fits in bounded memory;
# MARGIN pixels of context around each synthesis tile exceed its receptive-field radius, so
# tiles join without seams; a model that reaches further sets a larger `margin` (the decoder's
# tiling, which streams rely on). The analysis tiles take only the context their layers
# reach (`analysis_reach`): the encoder's latents are its own choice.
TILE = 1024
MARGIN = 64
LATENT_FACTOR = 16  # y is 1/16 of the image size in both architectures (four stride-2 stages)
FEW_CHANNELS = 4  # transposed convolutions to this many channels or fewer run as SubpixelConv

MODELS: dict[str, type] = {}


def register_model(cls: type) -> type:
    """Class decorator: adds an architecture to MODELS under the name `aecore.registry` gives it."""
    cls.arch = registry.name_of(cls, registry.ARCHITECTURES)
    MODELS[cls.arch] = cls
    return cls


def build_model(config: ModelConfig) -> "CompressionModel":
    if config.arch not in MODELS:
        raise ValueError(f"unknown architecture {config.arch!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[config.arch](config)


def tiled(fn, x: torch.Tensor, factor: float, tile: int, margin: int) -> torch.Tensor:
    """fn (output size = input size * factor) applied tile by tile with context, then stitched.

    Tile corners and margins must be multiples of 1/factor when factor < 1.
    """
    h, w = x.shape[-2:]
    if h <= tile and w <= tile:
        return fn(x)
    scale = lambda v: int(round(v * factor))  # noqa: E731
    out = None
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            cy0, cx0 = max(0, y0 - margin), max(0, x0 - margin)
            part = fn(x[..., cy0:min(h, y1 + margin), cx0:min(w, x1 + margin)])
            if out is None:
                out = part.new_empty((*part.shape[:2], scale(h), scale(w)))
            out[..., scale(y0):scale(y1), scale(x0):scale(x1)] = \
                part[..., scale(y0 - cy0):scale(y1 - cy0), scale(x0 - cx0):scale(x1 - cx0)]
    return out


def analysis_reach(layers: nn.Sequential) -> tuple[int, int]:
    """(before, after): how many input pixels above/left of and below/right of an output pixel's
    own block its value depends on, from the layers' geometry; ValueError for a layer it does not know.

    Output pixel i of a chain whose strides multiply to S owns input pixels S*i..S*i+S-1 and
    reads S*i - before .. S*i + after (a convolution with kernel k, padding p at input spacing j
    adds p*j before and (k-1-p)*j after; a max-pooling likewise with its padding)."""
    before = after = 0
    jump = 1
    for layer in layers:
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
            (k, kw), (s, sw), (p, pw) = pair(layer.kernel_size), pair(layer.stride), pair(layer.padding)
            dilation = pair(layer.dilation)
            if (k, s, p) != (kw, sw, pw) or dilation != (1, 1) or (isinstance(layer, nn.Conv2d)
                                                                   and layer.padding_mode != "zeros"):
                raise ValueError(f"no receptive-field rule for {layer}")
            before += p * jump
            after += (k - 1 - p) * jump
            jump *= s
        elif not isinstance(layer, (GDN, nn.ReLU, nn.LeakyReLU)):  # the pointwise layers
            raise ValueError(f"no receptive-field rule for {type(layer).__name__}")
    return before, after


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def quantize_proxy(x: torch.Tensor, training: bool, mean: torch.Tensor | None = None) -> torch.Tensor:
    """Values whose likelihood is the rate: x + uniform noise while training (Balle 2017),
    the actual rounded values (around `mean`) in evaluation."""
    if training:
        return x + torch.empty_like(x).uniform_(-0.5, 0.5)
    return x.round() if mean is None else torch.round(x - mean) + mean


@dataclass(frozen=True)
class Latent:
    """One coded latent of one image, as the encoder computes it.

    Each architecture describes its latents with these (`CompressionModel.analyse`), one per
    stream section; `compress` writes them and the Inside-the-model analysis (aecore.latents)
    reads their likelihoods, so neither needs to know which architecture it has.
    """

    name: str                   # "y", "z"
    factor: int                 # 1/factor of the padded image's size
    values: torch.Tensor        # (1, C, h, w) as the encoder computes it, before rounding
    symbols: torch.Tensor       # (1, C, h, w) the integers the entropy model codes
    entropy: object             # its entropy model (see models.entropy for the contract)
    params: dict = field(default_factory=dict)  # the entropy model's conditioning (mean, scale)

    def coded(self) -> torch.Tensor:
        """The latent as the decoder gets it (before the gain is undone)."""
        return self.entropy.dequantize(self.symbols, **self.params)

    def likelihoods(self) -> torch.Tensor:
        return self.entropy.likelihood(self.coded(), **self.params)

    def compress(self) -> bytes:
        return self.entropy.compress(self.symbols, **self.params)


@dataclass(frozen=True)
class Analysis:
    """What the encoder computes from one padded image: its latents in stream order and, when
    asked for, the analysis transform's maps after each pooling stage (none when tiled)."""

    latents: list[Latent]
    stages: list[torch.Tensor] = field(default_factory=list)


class CompressionModel(nn.Module):
    """Base for variable-rate learned codecs.

    Subclasses set `stride` (the factor the input must divide: its coarsest latent's) and implement
    `forward(x, quality) -> {"x_hat", "likelihoods": {...}}` for training,
    `analyse(x, quality, stages) -> Analysis` (what `compress` codes, one section per latent) and
    `decompress(sections, height, width, quality, tile)`.
    Quality is continuous in [1, levels]; 1 is the smallest file.
    """

    stride = 16
    margin = MARGIN  # context around each tile (a multiple of 16 px), over the receptive-field radius
    # The precision of the decoder's synthesis for the streams this model writes (the header
    # says which a stream wants). bfloat16 is 2.5x faster; a model whose layers carry its
    # rounding too far for another runtime to reproduce the pixels (the seed) decodes in float32.
    decode_dtype = torch.bfloat16
    # Whether y's entropy parameters come from side information computed in fixed point
    # (`aecore.models.exact`, format version 3): models with a hyperprior.
    exact_parameters = False

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.levels = len(config.lambdas)
        # Start the gains near sqrt(lambda): the quantizer step that balances each lambda.
        # Python floats, not tensor arithmetic: see GainUnits.
        mid = config.lambdas[len(config.lambdas) // 2]
        self.init_log_gain = tuple(0.5 * math.log(lam / mid) for lam in config.lambdas)
        self._copies: dict = {}

    def extended(self, levels: int) -> "CompressionModel":
        """The same model with `levels` quality levels: the new ones continue the lambda ladder
        at its top at the same ratio, and their gains continue the top two levels' log-gains in a
        straight line, so training starts them near a finer quantizer of what the top level does."""
        if levels <= self.levels:
            raise ValueError(f"a model with {self.levels} levels extends only to more, not {levels}")
        lambdas = list(self.config.lambdas)
        ratio = lambdas[-1] / lambdas[-2]
        lambdas += [round(lambdas[-1] * ratio ** (i + 1), 6) for i in range(levels - self.levels)]
        wider = type(self)(ModelConfig.from_dict({**self.config.to_dict(), "lambdas": lambdas}))
        state = self.state_dict()
        for name, table in state.items():
            if name.endswith(("log_gain", "log_inverse_gain")):
                step = table[-1] - table[-2]
                state[name] = torch.cat([table] + [(table[-1] + step * (i + 1))[None]
                                                   for i in range(levels - self.levels)])
        wider.load_state_dict(state)
        return wider

    def rate_parameters(self) -> list[nn.Parameter]:
        """Entropy-model densities and gains: few numbers that must move far, so training
        gives them a larger learning rate (see TrainConfig.rate_lr_scale)."""
        return [p for m in self.modules() if isinstance(m, (FactorizedDensity, GainUnits)) for p in m.parameters()]

    def gain_units(self, channels: int) -> GainUnits:
        return GainUnits(self.levels, channels, self.init_log_gain)

    def quality_tensor(self, quality: float | torch.Tensor, batch: int) -> torch.Tensor:
        q = torch.as_tensor(quality, dtype=torch.float32).reshape(-1)
        return q.expand(batch) if q.numel() == 1 else q

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph = (-h) % self.stride
        pw = (-w) % self.stride
        return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x

    def analyse(self, x: torch.Tensor, quality: float, stages: bool = False,
                latents: dict | None = None, analysed: torch.Tensor | None = None,
                exact_parameters: bool = True) -> Analysis:
        """The latents of one padded image (1, 3, H, W); `stages`: keep the pooling stages' maps.
        `latents` ({name: unrounded values after the gains}) replaces the analysis transforms'
        output: a refined encode (`aecore.refine`) codes its own latents through the same path.
        `analysed` is `analysis(x)` computed before (it does not depend on the quality).
        `exact_parameters=False`: entropy parameters as format versions 1 and 2 computed them."""
        raise NotImplementedError

    def codable_quality(self, quality: float) -> float:
        """The quality (on the stream's 1/1000 grid) that an encode at `quality` codes at: itself,
        or for fixed-point parameters a neighbour where no gain lies at a rounding tie."""
        return quality

    @deterministic
    def compress(self, x: torch.Tensor, quality: float, latents: dict | None = None,
                 kept: dict | None = None, exact_parameters: bool = True) -> list[bytes]:
        """One entropy-coded section per latent, in the order `analyse` lists them.

        `kept`, a dict the caller keeps for this one image, holds the analysis transform's output
        ("analysis", and the "seconds" it took): it is the same at every quality (the gains come
        after it), so the first compress fills it and later ones at other qualities start from it,
        coding the same bytes as a compress of their own."""
        x = self.pad(x)
        analysed = None
        if kept is not None and latents is None:
            if "analysis" not in kept:
                t0 = time.perf_counter()
                kept["analysis"] = self.analysis(x)
                kept["seconds"] = time.perf_counter() - t0
            analysed = kept["analysis"]
        return [latent.compress() for latent in
                self.analyse(x, quality, latents=latents, analysed=analysed, exact_parameters=exact_parameters).latents]

    def analysis(self, x: torch.Tensor, stages: list | None = None) -> torch.Tensor:
        """g_a over a padded image, tiled for large inputs (float32 out). `stages`, when given
        and the image is one tile, receives the output of each max-pooling layer (float32)."""
        if stages is not None and max(x.shape[-2:]) <= TILE:
            return self._fast(self.g_a, torch.bfloat16, stages)(x)
        return tiled(self._fast(self.g_a, torch.bfloat16), x, 1 / LATENT_FACTOR, TILE, self.analysis_margin())

    def analysis_margin(self) -> int:
        """Context around each analysis tile: its layers' reach rounded up to whole latent pixels
        (32 px for the hyperprior, where `margin` is 64). A tile's latents are then the whole
        image's up to float rounding, and about 8% fewer pixels are transformed at 12 MP."""
        try:
            before, after = analysis_reach(self.g_a)
        except ValueError:
            return self.margin
        # the last latent of a tile reads `after` pixels past its own block, which ends at the tile's edge
        need = max(before, after - (LATENT_FACTOR - 1))
        return -(-need // LATENT_FACTOR) * LATENT_FACTOR

    def synthesis(self, y_hat: torch.Tensor, tile: int | None = None,
                  dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
        """g_s over a latent, in tiles of `tile` output pixels (default TILE; float32 out), its
        arithmetic in `dtype` (see `decode_dtype`)."""
        return tiled(self._fast(self.g_s, dtype), y_hat, LATENT_FACTOR, (tile or TILE) // LATENT_FACTOR,
                     self.margin // LATENT_FACTOR)

    def _fast(self, module: nn.Module, dtype: torch.dtype, stages: list | None = None):
        """The transform in `dtype` on channels_last tensors, bfloat16 about 2.5x faster than
        float32 on CPUs with AVX-512 bf16/AMX (elsewhere emulated, to the same bits where
        measured: see `precision`). It runs a copy of the module in that dtype (made once per
        weights version), which gives autocast's results without casting every weight on every
        call. Only the transforms run this way; the path that makes entropy parameters stays
        float32, so streams still decode exactly, and the decoded pixels differ from a float32
        synthesis by noise far below the coding error (over 50 dB PSNR between the two)."""
        fast = self.coding_copy(module, dtype)
        emulated = isinstance(fast, Bfloat16Rounded)

        def run(x: torch.Tensor) -> torch.Tensor:
            x = x.to(dtype=dtype, memory_format=torch.channels_last)
            if emulated:  # Bfloat16Rounded keeps the pooling layers' outputs itself
                return fast(x, stages).contiguous()
            if stages is None:
                return fast(x).float().contiguous()
            for layer in fast:  # what nn.Sequential does, keeping the pooling layers' outputs
                x = layer(x)
                if isinstance(layer, nn.MaxPool2d):
                    stages.append(x.float())
            return x.float().contiguous()
        return run

    def prepare_coding(self) -> None:
        """Builds now what coding derives from the weights (the bfloat16 transform copies and the
        entropy tables; each is cached per weights version), so that the first encode or decode
        times only its own work: the first call after loading was about twice the next ones."""
        self.coding_copy(self.g_a)
        self.coding_copy(self.g_s, self.decode_dtype)
        self.entropy_tables()

    def entropy_tables(self) -> None:
        """Subclasses build (and cache) their coding tables here."""

    def coding_copy(self, module: nn.Module, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
        """The copy of `module` that coding runs in `dtype`: `fast_copy`, emulated on float32
        kernels where this CPU's bfloat16 ones are slow (`precision.emulated`)."""
        return self.fast_copy(module, dtype, emulated=precision.emulated(dtype))

    def fast_copy(self, module: nn.Module, dtype: torch.dtype = torch.bfloat16, emulated: bool = False) -> nn.Module:
        """The bfloat16 (or `dtype`), channels_last copy of `module` that coding runs (kept per
        weights version); `emulated`: that bfloat16 copy run by float32 kernels (`Bfloat16Rounded`).

        Transposed convolutions to a few channels (the last decoder layer) become the same
        function as a convolution plus pixel shuffle, which runs about twice as fast.
        """
        def build() -> nn.Module:
            fast = copy.deepcopy(module)
            for parent in fast.modules():
                for name, child in parent.named_children():
                    if isinstance(child, nn.ConvTranspose2d) and child.out_channels <= FEW_CHANNELS:
                        setattr(parent, name, SubpixelConv(child))
            fast = fast.to(dtype=dtype, memory_format=torch.channels_last).requires_grad_(False)
            return Bfloat16Rounded(fast).requires_grad_(False) if emulated else fast
        key, name = weights_version(module), (id(module), dtype, emulated)
        if self._copies.get(name, (None,))[0] != key:  # rebuilt whenever the weights change
            with torch.inference_mode(False):  # made by a decode or not, refinement's autograd runs it too
                self._copies[name] = (key, build())
        return self._copies[name][1]

    def latent_shape(self, height: int, width: int, factor: int) -> tuple[int, int]:
        """(h, w) of the latent at 1/factor of a height x width image padded to the stride."""
        return (math.ceil(height / self.stride) * self.stride // factor,
                math.ceil(width / self.stride) * self.stride // factor)
