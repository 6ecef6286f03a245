"""The seed model: the original plain convolutional autoencoder, made into a real codec.

    x --[(conv3x3 + ReLU) xD + maxpool] x4--> conv3x3 --> y (1/16) --*gain--> Q --> [factorized]
                                                                                |
    x_hat <--conv3x3-- [upsample x2 + (conv3x3 + ReLU) xD] x4 <-- (conv3x3 + ReLU) xD <--*igain
                       (the last stage has D-1 of them)

D (`ModelConfig.depth`) is the number of convolutions per resolution stage: 1 in the first
weights, 2 in the shipped ones (`deepened` grows a trained model without changing what it
computes). Learned end to end with the same rate-distortion loss as the hyperprior; the
only side of it that is not the original design is the entropy model that codes its
latent (a per-channel factorized density, Balle et al. 2017) and the gain units for the rate.
`SeedHyperprior` ("seed-hyperprior") keeps these transforms and codes y with the default
model's mean-scale hyperprior instead: the same picture in 15-37% fewer bits.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .base import (LATENT_FACTOR, MARGIN, Analysis, CompressionModel, Latent, ModelConfig, quantize_proxy,
                   register_model, ste_round)
from .entropy import FactorizedDensity, deterministic
from .hyperprior import Hyperprior
from .precision import autocast


class Upsample(nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _convs(cin: int, cout: int, depth: int) -> list[nn.Module]:
    """`depth` 3x3 convolutions, each followed by a ReLU."""
    layers = []
    for i in range(depth):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1), nn.ReLU(inplace=True)]
    return layers


def _down(cin: int, cout: int, depth: int) -> list[nn.Module]:
    return [*_convs(cin, cout, depth), nn.MaxPool2d(2)]


def _up(cin: int, cout: int, depth: int) -> list[nn.Module]:
    return [Upsample(), *_convs(cin, cout, depth)]


def seed_margin(config: ModelConfig) -> int:
    """Each extra convolution per stage widens the synthesis' reach by about 2 latent pixels
    (5.75 of them, 92 px, at depth 2): the tiles need that much more context."""
    return MARGIN + 32 * (config.depth - 1)


def seed_transforms(config: ModelConfig) -> tuple[nn.Sequential, nn.Sequential]:
    """(g_a, g_s): [convolutions + ReLU, max-pooling] x4 down, [upsampling, convolutions + ReLU] x4 up."""
    n, m, d = config.channels, config.latent_channels, config.depth
    g_a = nn.Sequential(*_down(3, n // 2, d), *_down(n // 2, n, d), *_down(n, n, d), *_down(n, n, d),
                        nn.Conv2d(n, m, 3, padding=1))
    g_s = nn.Sequential(*_convs(m, n, d), *_up(n, n, d), *_up(n, n, d), *_up(n, n // 2, d),
                        Upsample(), *_convs(n // 2, n // 2, d - 1), nn.Conv2d(n // 2, 3, 3, padding=1))
    # He initialisation: with PyTorch's default (variance 1/(3 fan_in)) the signal shrinks
    # at every ReLU layer and this 10-layer plain network barely learns at first.
    # Shapes-only builds on the meta device skip it: normal_ there sets off a lazy import of
    # torch's compiler stack (about a second).
    for layer in (*g_a, *g_s):
        if isinstance(layer, nn.Conv2d) and not layer.weight.is_meta:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    return g_a, g_s


@register_model
class SeedAutoencoder(CompressionModel):
    stride = LATENT_FACTOR  # y's grid: four 2x2 max-poolings
    coded_latents = ("y",)
    # Its plain ReLU stack carries bfloat16 rounding far: against a float32 synthesis up to 11
    # grey levels, and one runtime's bfloat16 rounding against another's up to 4 (their float32
    # sums differ in the last bit, which moves a value across a rounding step now and then),
    # where float32 on both sides agrees within one. So its streams decode in float32.
    decode_dtype = torch.float32

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.margin = seed_margin(config)
        self.g_a, self.g_s = seed_transforms(config)
        self.gain = self.gain_units(config.latent_channels)
        self.y_density = FactorizedDensity(config.latent_channels, config.y_radius)

    def with_hyperprior(self) -> "SeedHyperprior":
        """These transforms and gains with a new (untrained) mean-scale hyperprior coding y."""
        model = SeedHyperprior(ModelConfig.from_dict({**self.config.to_dict(), "arch": SeedHyperprior.arch}))
        model.load_state_dict({k: v for k, v in self.state_dict().items() if k.startswith(("g_a.", "g_s.", "gain."))},
                              strict=False)
        return model

    def deepened(self, depth: int) -> "SeedAutoencoder":
        """The same function with `depth` convolutions per stage: the new convolutions start as
        identities (each one's input is non-negative, after a ReLU or an upsampled ReLU, so
        ReLU(identity) passes it through unchanged), the rest keep their trained weights."""
        config = ModelConfig.from_dict({**self.config.to_dict(), "depth": depth})
        deeper = SeedAutoencoder(config)
        deeper.load_state_dict({k: v for k, v in self.state_dict().items() if not k.startswith(("g_a.", "g_s."))},
                               strict=False)
        for old_seq, new_seq in ((self.g_a, deeper.g_a), (self.g_s, deeper.g_s)):
            old = list(old_seq)
            i = 0
            for new in new_seq:
                match = i < len(old) and type(old[i]) is type(new) and (
                    not isinstance(new, nn.Conv2d) or old[i].weight.shape == new.weight.shape)
                if match:
                    new.load_state_dict(old[i].state_dict())
                    i += 1
                elif isinstance(new, nn.Conv2d):
                    with torch.no_grad():
                        new.weight.zero_()
                        new.weight[:, :, 1, 1] = torch.eye(new.out_channels, new.in_channels)
                        new.bias.zero_()
            if i != len(old):
                raise ValueError(f"cannot deepen this seed model to depth {depth}")
        return deeper

    def forward(self, x: torch.Tensor, quality: torch.Tensor) -> dict:
        q = self.quality_tensor(quality, x.shape[0])
        with autocast(x.device):
            y = self.g_a(x)
        y = y.float() * self.gain.gain(q)                                   # (B, M, H/16, W/16)
        y_likelihood = self.y_density.likelihood(quantize_proxy(y, self.training))
        y_hat = ste_round(y) * self.gain.inverse_gain(q)
        with autocast(x.device):
            x_hat = self.g_s(y_hat)
        return {"x_hat": x_hat.float(), "likelihoods": {"y": y_likelihood}}

    # -- coding ---------------------------------------------------------------------------

    def entropy_tables(self) -> None:
        self.y_density.coding_tables()

    def analyse(self, x: torch.Tensor, quality: float, stages: bool = False,
                latents: dict | None = None, analysed: torch.Tensor | None = None,
                exact_parameters: bool = True) -> Analysis:
        """y alone, factorized (no side information, so `exact_parameters` changes nothing);
        `stages`: the encoder's maps after each max-pooling."""
        q = self.quality_tensor(quality, 1)
        maps = [] if stages else None
        if latents is not None:
            y = latents["y"]
        else:
            y = (self.analysis(x, maps) if analysed is None else analysed) * self.gain.gain(q)
        symbols = torch.round(y).clamp(-self.y_density.radius, self.y_density.radius)
        return Analysis([Latent("y", LATENT_FACTOR, y, symbols, self.y_density)], maps or [])

    def relaxed(self, latents: dict, quality: float, rounding,
                dtype: torch.dtype = torch.bfloat16) -> tuple[torch.Tensor, torch.Tensor]:
        """Bits and padded reconstruction of an unrounded y under `rounding` (see the hyperprior's)."""
        q = self.quality_tensor(quality, 1)
        y = rounding(latents["y"])
        bits = -torch.log2(self.y_density.likelihood(y)).sum()
        return bits, self.synthesis(y * self.gain.inverse_gain(q), dtype=dtype)

    @deterministic
    def decompress(self, sections: list[bytes], height: int, width: int, quality: float,
                   tile: int | None = None, dtype: torch.dtype | None = None,
                   exact_parameters: bool = True) -> torch.Tensor:
        if len(sections) != 1:
            raise ValueError(f"seed stream needs 1 section, got {len(sections)}")
        q = self.quality_tensor(quality, 1)
        y_shape = (self.config.latent_channels, *self.latent_shape(height, width, LATENT_FACTOR))
        y_hat = self.y_density.decompress(sections[0], y_shape) * self.gain.inverse_gain(q)
        return self.synthesis(y_hat, tile, dtype or self.decode_dtype)[..., :height, :width]


@register_model
class SeedHyperprior(Hyperprior):
    """The seed's transforms with the default model's entropy model: y coded as a Gaussian whose
    mean and scale a hyperprior predicts, instead of one fixed density per channel. The seed
    design says nothing about entropy coding; on the shipped transforms this model codes the
    same latents in 15-37% fewer bits than the factorized density (Kodak, qualities 8 to 1)."""

    decode_dtype = torch.float32  # its ReLU stack carries bfloat16 rounding far: see SeedAutoencoder

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.margin = seed_margin(config)

    transforms = staticmethod(seed_transforms)
