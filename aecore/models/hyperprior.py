"""The default model: a variable-rate mean-scale hyperprior (Minnen et al. 2018, no context).

    x --g_a--> y --*gain--> y_g --h_a--> z --*hgain--> z_g --Q--> [factorized] --*ihgain--> z_hat
                              |                                                            |
                              |                         (mean, scale) <------h_s-----------+
                              v
                  Q(y_g - mean) --> [Gaussian(0, scale)] --> + mean --*igain--> y_hat --g_s--> x_hat

y lives at 1/LATENT_FACTOR (1/16) of the image size, z HYPER_FACTOR (4) times coarser
(1/64): the multi-resolution latents. Gains
(Cui et al. 2021) give one network a continuous rate. No autoregressive context, so
decoding stays parallel. For coding, the entropy-parameter path (h_s) runs in fixed point
(`aecore.models.exact`), so encoder and decoder compute identical scale indexes on any CPU;
training and the refinement loop run it in float32, differentiably.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import (LATENT_FACTOR, Analysis, CompressionModel, Latent, ModelConfig, quantize_proxy, register_model,
                   ste_round)
from . import exact
from .entropy import FactorizedDensity, GaussianConditional, deterministic, weights_version
from .layers import GDN, conv, deconv
from .precision import autocast

HYPER_FACTOR = 4  # z is 4x4 times coarser than y: h_a and h_s have two stride-2 stages each


@register_model
class Hyperprior(CompressionModel):
    stride = LATENT_FACTOR * HYPER_FACTOR  # z's grid
    coded_latents = ("y", "z")  # what `analyse` takes as `latents` and `relaxed` takes
    exact_parameters = True     # its streams' entropy parameters are fixed point (format version 3)

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        n, m = config.channels, config.latent_channels
        self.g_a, self.g_s = self.transforms(config)
        self.h_a = nn.Sequential(conv(m, n, 3, 1), nn.LeakyReLU(inplace=True), conv(n, n),
                                 nn.LeakyReLU(inplace=True), conv(n, n))
        self.h_s = nn.Sequential(deconv(n, n), nn.LeakyReLU(inplace=True), deconv(n, m),
                                 nn.LeakyReLU(inplace=True), conv(m, 2 * m, 1, 1))
        self.gain = self.gain_units(m)
        self.hyper_gain = self.gain_units(n)
        self.z_density = FactorizedDensity(n, config.z_radius)
        self.y_conditional = GaussianConditional()

    @staticmethod
    def transforms(config: ModelConfig) -> tuple[nn.Sequential, nn.Sequential]:
        """(g_a, g_s): four stride-2 convolutions with GDN down, their transposes with IGDN up."""
        n, m = config.channels, config.latent_channels
        g_a = nn.Sequential(conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m))
        g_s = nn.Sequential(deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
                            deconv(n, n), GDN(n, inverse=True), deconv(n, 3))
        return g_a, g_s

    def entropy_parameters(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, scale) in float32 from the dequantized z: training and the refinement loop."""
        mean, scale = self.h_s(z_hat.float()).chunk(2, dim=1)
        return mean, scale.abs()

    def coding_parameters(self, z_symbols: torch.Tensor, quality: float,
                          exact_parameters: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, scale) that a stream codes y with, from round(z): fixed point (the same bits on
        every machine), or float32 for streams of format versions 1 and 2."""
        if not exact_parameters:
            q = self.quality_tensor(quality, 1)
            return self.entropy_parameters(z_symbols * self.hyper_gain.inverse_gain(q))
        return exact.entropy_parameters(self.fixed_h_s(), self.hyper_gain.log_inverse_gain, z_symbols, quality)

    def fixed_h_s(self) -> list:
        """h_s in fixed point (`exact.fixed_layers`), kept per weights version like the coding copies."""
        key = weights_version(self.h_s)
        if self._copies.get("fixed_h_s", (None,))[0] != key:  # rebuilt whenever the weights change
            self._copies["fixed_h_s"] = (key, exact.fixed_layers(self.h_s))
        return self._copies["fixed_h_s"][1]

    def codable_quality(self, quality: float) -> float:
        return exact.safe_quality(self.hyper_gain.log_inverse_gain, quality, 1.0, float(self.levels))

    def forward(self, x: torch.Tensor, quality: torch.Tensor) -> dict:
        q = self.quality_tensor(quality, x.shape[0])
        with autocast(x.device):
            y = self.g_a(x)
        y = y.float() * self.gain.gain(q)                                   # (B, M, H/16, W/16)
        with autocast(x.device):
            z = self.h_a(y)
        z = z.float() * self.hyper_gain.gain(q)                             # (B, N, H/64, W/64)
        z_likelihood = self.z_density.likelihood(quantize_proxy(z, self.training))
        mean, scale = self.entropy_parameters(ste_round(z) * self.hyper_gain.inverse_gain(q))
        y_likelihood = self.y_conditional.likelihood(quantize_proxy(y, self.training, mean), mean, scale)
        y_hat = (ste_round(y - mean) + mean) * self.gain.inverse_gain(q)
        with autocast(x.device):
            x_hat = self.g_s(y_hat)
        return {"x_hat": x_hat.float(), "likelihoods": {"y": y_likelihood, "z": z_likelihood}}

    # -- coding ---------------------------------------------------------------------------

    def entropy_tables(self) -> None:
        self.z_density.coding_tables()
        self.y_conditional.coding_tables()
        self.fixed_h_s()

    def analyse(self, x: torch.Tensor, quality: float, stages: bool = False,
                latents: dict | None = None, analysed: torch.Tensor | None = None,
                exact_parameters: bool = True) -> Analysis:
        """z (factorized) then y (Gaussian given z): the order the decoder reads them;
        `stages`: the encoder's maps after each max-pooling (the seed's transforms have them)."""
        q = self.quality_tensor(quality, 1)
        maps = [] if stages else None
        if latents is None:
            y = (self.analysis(x, maps) if analysed is None else analysed) * self.gain.gain(q)
            z = self.h_a(y) * self.hyper_gain.gain(q)
        else:
            y, z = latents["y"], latents["z"]
        z_symbols = torch.round(z).clamp(-self.z_density.radius, self.z_density.radius)
        mean, scale = self.coding_parameters(z_symbols, quality, exact_parameters)
        return Analysis([Latent("z", self.stride, z, z_symbols, self.z_density),
                         Latent("y", LATENT_FACTOR, y, torch.round(y - mean), self.y_conditional,
                                {"mean": mean, "scale": scale})], maps or [])

    def relaxed(self, latents: dict, quality: float, rounding,
                dtype: torch.dtype = torch.bfloat16) -> tuple[torch.Tensor, torch.Tensor]:
        """Bits and padded reconstruction of unrounded latents {"y", "z"} under `rounding`
        (soft while refining at encode time, torch.round for what the decoder will see, the means
        then from `coding_parameters`): z is rounded, then y - mean around the means that z
        predicts, as in `analyse`."""
        q = self.quality_tensor(quality, 1)
        z = rounding(latents["z"])
        if rounding is torch.round:
            z = z.clamp(-self.z_density.radius, self.z_density.radius)
            mean, scale = self.coding_parameters(z, quality)
        else:
            mean, scale = self.entropy_parameters(z * self.hyper_gain.inverse_gain(q))
        y = rounding(latents["y"] - mean) + mean
        bits = -(torch.log2(self.z_density.likelihood(z)).sum()
                 + torch.log2(self.y_conditional.likelihood(y, mean, scale)).sum())
        return bits, self.synthesis(y * self.gain.inverse_gain(q), dtype=dtype)

    @deterministic
    def decompress(self, sections: list[bytes], height: int, width: int, quality: float,
                   tile: int | None = None, dtype: torch.dtype | None = None,
                   exact_parameters: bool = True) -> torch.Tensor:
        if len(sections) != 2:
            raise ValueError(f"hyperprior stream needs 2 sections, got {len(sections)}")
        q = self.quality_tensor(quality, 1)
        z_shape = (self.config.channels, *self.latent_shape(height, width, self.stride))
        z_symbols = self.z_density.decompress(sections[0], z_shape)
        mean, scale = self.coding_parameters(z_symbols, quality, exact_parameters)
        y_shape = (self.config.latent_channels, *self.latent_shape(height, width, LATENT_FACTOR))
        y_hat = self.y_conditional.decompress(sections[1], y_shape, mean, scale) * self.gain.inverse_gain(q)
        return self.synthesis(y_hat, tile, dtype or self.decode_dtype)[..., :height, :width]
