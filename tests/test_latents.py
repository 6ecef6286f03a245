"""aecore.latents: the estimated bits match the real stream, shapes and orderings hold."""
import numpy as np
import pytest
import torch

from aecore import bitstream, latents

from .conftest import make_tiny


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """Astronaut at 200x184: not a multiple of 64, so the padding is exercised."""
    from skimage.data import astronaut
    return np.ascontiguousarray(astronaut()[::2, ::2][:200, 20:204])


def payload_bits(model, image, quality) -> int:
    """8 x the entropy-coded sections' bytes: the stream without the container's header."""
    x = torch.tensor(image).permute(2, 0, 1)[None].float().div(255)
    return 8 * sum(len(s) for s in model.compress(x, bitstream.quantize_quality(quality)))


@pytest.mark.parametrize("name", ["tiny-hyper", "tiny-seed"])
def test_estimated_bits_match_the_real_stream(name, image):
    model = make_tiny(name)
    for quality in (6.0, 8.0):
        view = latents.analyse(model, image, quality)
        real = payload_bits(model, image, quality)
        assert view["total_bits"] == pytest.approx(real, rel=0.10), (quality, view["total_bits"], real)
        assert view["bpp"] == pytest.approx(view["total_bits"] / (200 * 184))


def test_hyperprior_latents_at_two_resolutions(image):
    view = latents.analyse(make_tiny("tiny-hyper"), image, 7.0)
    assert view["arch"] == "hyperprior" and not view["features"]
    y, z = view["latents"]
    assert (y["name"], y["factor"], z["name"], z["factor"]) == ("y", 16, "z", 64)
    assert y["values"].shape == y["coded"].shape == (12, 16, 12)  # padded to 256x192: multiples of 64
    assert z["values"].shape == (8, 4, 3)
    for lat in (y, z):
        assert np.all(np.diff(lat["channel_bits"]) <= 0)  # costliest channel first
        assert sorted(lat["channels"]) == list(range(lat["values"].shape[0]))
        assert lat["bits"].shape == lat["values"].shape[1:]
        assert lat["total_bits"] == pytest.approx(lat["channel_bits"].sum())
        assert lat["total_bits"] == pytest.approx(lat["bits"].sum())
    assert view["total_bits"] == pytest.approx(y["total_bits"] + z["total_bits"])
    assert view["bits_map"].shape == (200, 184) and view["bits_map"].min() >= 0
    # The map spreads all bits over the padded image; cropping to the picture keeps most of them.
    assert 0.7 * view["total_bits"] < view["bits_map"].sum() <= view["total_bits"] * 1.01


def test_seed_feature_maps_after_each_pooling_stage(image):
    view = latents.analyse(make_tiny("tiny-seed"), image, 5.0)
    (y,) = view["latents"]
    assert y["values"].shape == (12, 13, 12)
    shapes = [f["values"].shape for f in view["features"]]
    assert shapes == [(4, 104, 96), (8, 52, 48), (8, 26, 24), (8, 13, 12)]  # padded to 208x192, halved
    assert [f["factor"] for f in view["features"]] == [2, 4, 8, 16]
    for f in view["features"]:
        energy = np.abs(f["values"]).mean(axis=(1, 2))
        assert np.all(np.diff(energy) <= 1e-7)


def test_quantization_shows_one_channel_before_and_after_rounding(image):
    for name in ("tiny-hyper", "tiny-seed"):
        view = latents.analyse(make_tiny(name), image, 8.0)
        qz, y = view["quantization"], view["latents"][0]
        assert qz["channel"] == y["channels"][0]
        assert qz["before"].shape == qz["after"].shape == y["values"].shape[1:]
        assert np.abs(qz["after"] - qz["before"]).max() <= 0.5 + 1e-4  # rounding moves a value by at most 1/2
    assert np.allclose(view["quantization"]["after"], np.round(view["quantization"]["after"]))  # seed: integers


def test_channel_grid():
    maps = np.random.default_rng(0).normal(size=(10, 8, 6)).astype(np.float32)
    grid = latents.channel_grid(maps, n=9, normalize=True, min_tile=16, gap=2)
    assert grid.dtype == np.uint8 and grid.shape == (3 * 16 + 4, 3 * 12 + 4)  # 3x3 tiles, enlarged 2x
    assert grid[16, 0] == 255  # the gap between rows
    shared = latents.channel_grid(maps * np.arange(1, 11)[:, None, None], n=4, normalize=False, min_tile=1)
    each = latents.channel_grid(maps * np.arange(1, 11)[:, None, None], n=4, normalize=True, min_tile=1)
    assert np.ptp(shared[:8, :6]) < np.ptp(each[:8, :6])  # on one scale, the weak first channel is faint
    relu = latents.channel_grid(np.abs(maps), n=1, min_tile=1)
    assert relu.min() < 60  # non-negative maps start at black, not mid-gray
    silent = latents.channel_grid(np.zeros((2, 4, 4)), n=2, min_tile=1, signed=True)
    assert set(np.unique(silent)) == {128, 255}  # zero is mid-gray for a latent (255: the gap)
    with pytest.raises(ValueError):
        latents.channel_grid(np.zeros((4, 4)))


def test_overlay_blends_the_heatmap_over_the_photo(image):
    bits = np.zeros(image.shape[:2], np.float32)
    bits[:, :50] = 2.0
    out = latents.overlay(image, bits, alpha=0.5)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert out[:, :50].mean() > out[:, 60:].mean() - 40  # yellow where the bits are
    with pytest.raises(ValueError):
        latents.overlay(image, bits[:10])


def test_an_encode_in_another_thread_during_the_analysis_changes_nothing(user_weights, image):
    """Every session's encodes run the same cached coding copy of the model. An encode in another
    thread, started while the analysis is inside that copy, must neither take the pooling maps
    away nor add to them: the analysis returns what it computed and records nothing on the model."""
    import threading
    from aecore.codecs import get_codec
    codec = get_codec("tiny-seed")
    model = codec.model
    alone = latents.analyse(model, image, 5.0)
    assert len(alone["features"]) == 4
    coding = model.coding_copy(model.g_a)
    first_layer = getattr(coding, "layers", coding)[0]  # Bfloat16Rounded where bfloat16 is emulated
    encoded, started = [], []

    def encode_elsewhere(_module, _inputs):
        if not started:  # once, from the analysis' own call (the other thread's passes through)
            started.append(True)
            other = threading.Thread(target=lambda: encoded.append(codec.encode(image, 3.0)))
            other.start()
            other.join()
    hook = first_layer.register_forward_pre_hook(encode_elsewhere)
    try:
        during = latents.analyse(model, image, 5.0)
    finally:
        hook.remove()
    assert started and len(encoded) == 1
    assert codec.decode(encoded[0]).shape == image.shape
    assert [f["values"].shape for f in during["features"]] == [f["values"].shape for f in alone["features"]]
    for a, b in zip(during["features"], alone["features"]):
        assert np.array_equal(a["values"], b["values"])
    assert during["total_bits"] == alone["total_bits"]
