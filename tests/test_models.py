import numpy as np
import pytest
import torch

from aecore.models import ModelConfig, build_model
from aecore.models.entropy import (SCALE_TABLE, FactorizedDensity, GaussianConditional, SymbolReader, SymbolWriter,
                                   categorical, gaussian_tables, scale_indexes)
from tests.conftest import TINY_MODELS, make_tiny


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_forward_shapes_and_likelihoods(name):
    model = make_tiny(name).train()
    x = torch.rand(2, 3, 64, 128)
    out = model(x, torch.tensor([1.0, 8.0]))
    assert out["x_hat"].shape == x.shape
    for lik in out["likelihoods"].values():
        assert lik.dtype == torch.float32 and (lik > 0).all() and (lik <= 1).all()


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_coded_size_matches_model_rate(name):
    """The entropy coder spends what the model's likelihoods promise (within table rounding)."""
    model = make_tiny(name)
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        out = model(x, torch.tensor([8.0]))
    ideal_bits = sum(-torch.log2(l).sum().item() for l in out["likelihoods"].values())
    coded_bits = 8 * sum(len(s) for s in model.compress(x, 8.0))
    assert ideal_bits > 100
    assert 0.9 * ideal_bits < coded_bits < 1.15 * ideal_bits + 64 * 8


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
@pytest.mark.parametrize("size", [(1, 1), (3, 7), (65, 129)])
def test_decompress_matches_encoder_reconstruction(name, size):
    model = make_tiny(name)
    x = torch.rand(1, 3, *size)
    sections = model.compress(x, 5.0)
    x_hat = model.decompress(sections, *size, 5.0)
    assert x_hat.shape == x.shape
    # Same reconstruction the encoder side computes from its own rounded latents.
    (y,) = [lat for lat in model.analyse(model.pad(x), 5.0).latents if lat.name == "y"]
    y_hat = y.coded() * model.gain.inverse_gain(torch.tensor([5.0]))
    with torch.no_grad():
        expected = model.synthesis(y_hat, dtype=model.decode_dtype)[..., :size[0], :size[1]]
    torch.testing.assert_close(x_hat, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_decode_identical_across_thread_counts(name):
    model = make_tiny(name)
    x = torch.rand(1, 3, 96, 80)
    sections = model.compress(x, 6.5)
    threads = torch.get_num_threads()
    try:
        decoded = []
        for n in (1, 2, 4):
            torch.set_num_threads(n)
            decoded.append(model.decompress(sections, 96, 80, 6.5))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(decoded[0], decoded[1]) and torch.equal(decoded[0], decoded[2])


def test_gaussian_coding_round_trip_with_clipping():
    rng = np.random.default_rng(1)
    indexes = rng.integers(0, len(SCALE_TABLE), size=(6, 9, 11))
    scale = torch.from_numpy(SCALE_TABLE[indexes].astype(np.float32))[None]
    assert np.array_equal(scale_indexes(scale[0].numpy()), indexes)  # each scale is its own table's
    symbols = np.round(rng.normal(size=indexes.shape) * SCALE_TABLE[indexes]).astype(np.int64)
    symbols[0, 0, 0] = 10**6  # far outside every table: clipped, not a crash
    mean = torch.rand(1, *indexes.shape)
    gaussian = GaussianConditional()
    data = gaussian.compress(torch.from_numpy(symbols)[None], scale=scale)
    decoded = gaussian.decompress(data, indexes.shape, mean=mean, scale=scale)
    radius = len(gaussian_tables()[indexes[0, 0, 0]]) // 2
    expected = symbols.copy()
    expected[0, 0, 0] = radius
    torch.testing.assert_close(decoded, torch.from_numpy(expected).float()[None] + mean, rtol=0, atol=0)
    with pytest.raises(ValueError, match="left over"):
        gaussian.decompress(data + data, indexes.shape, mean=mean, scale=scale)
    with pytest.raises(ValueError, match="shape"):
        gaussian.decompress(data, (6, 9, 12), mean=mean, scale=scale)


def test_factorized_coding_round_trip_and_ideal_size():
    """The density's own coder: clipped symbols come back, in about -log2(likelihood) bits."""
    torch.manual_seed(0)
    density = FactorizedDensity(3, radius=20)
    symbols = torch.round(torch.randn(1, 3, 16, 16) * 4)
    symbols[0, 0, 0, 0] = 500  # beyond the table: clipped to the radius
    data = density.compress(symbols)
    decoded = density.decompress(data, (3, 16, 16))
    expected = symbols.clamp(-20, 20)
    torch.testing.assert_close(decoded, expected, rtol=0, atol=0)
    with torch.no_grad():
        ideal = -torch.log2(density.likelihood(expected)).sum().item()
    assert 0.95 * ideal < 8 * len(data) < 1.05 * ideal + 64
    with pytest.raises(ValueError, match="left over"):
        density.decompress(data, (2, 16, 16))


def test_reader_rejects_leftover_data():
    w = SymbolWriter()
    model = categorical(np.array([0.5, 0.25, 0.25]))
    w.add(np.array([0, 1, -1, 1]), 1, model)
    data = w.getvalue()
    r = SymbolReader(data)
    r.read(2, 1, model)
    with pytest.raises(ValueError, match="left over"):
        r.finish()


def test_reader_rejects_a_section_that_ends_before_its_last_symbol():
    """Reading more symbols than were written used to give the lowest symbol from the empty
    coder and pass the end check; now the section must end exactly at the last symbol."""
    model = categorical(np.array([0.5, 0.25, 0.25]))
    w = SymbolWriter()
    w.add(np.array([0, 1, -1, 1]), 1, model)
    w.add(np.array([1, 1]), 1, model)
    data = w.getvalue()
    for counts in ((4, 3), (5, 2), (4, 2, 1), (7,)):  # one symbol more than written
        r = SymbolReader(data)
        with pytest.raises(ValueError, match="ends before its last symbol"):
            for n in counts:
                r.read(n, 1, model)
            r.finish()
    r = SymbolReader(data)  # the counts the writer used read back exactly
    assert r.read(4, 1, model).tolist() == [0, 1, -1, 1] and r.read(2, 1, model).tolist() == [1, 1]
    r.finish()


def test_scale_indexes_round_up():
    assert scale_indexes(np.array([0.0, SCALE_TABLE[3], SCALE_TABLE[3] * 1.01, 1e9])).tolist() == [0, 3, 4, 63]


def test_scale_indexes_equal_a_binary_search():
    rng = np.random.default_rng(0)
    table = SCALE_TABLE.astype(np.float32)
    scales = np.concatenate([np.exp(rng.uniform(-12, 8, 200_000)), table, np.nextafter(table, 0),
                             np.nextafter(table, np.inf), [0, -0.0, -1, np.inf, np.nan, 1e-30, 3e38]]).astype(np.float32)
    expected = np.searchsorted(table, scales, side="left").clip(0, len(table) - 1)
    assert np.array_equal(scale_indexes(scales), expected)


def test_tables_follow_weight_changes():
    model = make_tiny("tiny-seed")
    before = model.y_density.coding_tables()
    assert model.y_density.coding_tables() is before  # cached while weights are unchanged
    with torch.no_grad():
        model.y_density.biases[0].add_(1.0)
    assert model.y_density.coding_tables() is not before


@pytest.mark.parametrize("kernel,stride", [(5, 2), (3, 2), (7, 2), (5, 4)])
def test_subpixel_conv_is_the_transposed_convolution(kernel, stride):
    from aecore.models.layers import SubpixelConv, deconv
    layer = deconv(6, 3, kernel, stride)
    x = torch.randn(2, 6, 7, 9)
    with torch.no_grad():
        torch.testing.assert_close(SubpixelConv(layer)(x), layer(x), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="deconv"):
        SubpixelConv(torch.nn.ConvTranspose2d(6, 3, 4, 2, 1))


def test_the_coding_copy_of_the_decoder_is_the_same_function():
    """The bfloat16 copy coding runs swaps the last transposed convolution for SubpixelConv."""
    from aecore.models.layers import SubpixelConv
    model = make_tiny("tiny-hyper")
    fast = model.fast_copy(model.g_s)
    assert isinstance(fast[-1], SubpixelConv) and not isinstance(model.g_s[-1], SubpixelConv)
    assert sum(isinstance(m, SubpixelConv) for m in fast.modules()) == 1  # wide layers stay as they are
    y = torch.randn(1, 12, 6, 5)
    with torch.no_grad():
        reference = model.g_s(y)
        err = (model.synthesis(y) - reference).pow(2).mean().sqrt()
    assert err < 1e-2 * reference.std()  # bfloat16 rounding, nothing more


def test_unknown_architecture_lists_known():
    with pytest.raises(ValueError, match="hyperprior"):
        build_model(ModelConfig(arch="nope"))


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_tiled_transforms_match_whole_image(name, monkeypatch):
    """Tiles with context join without seams: the same latents and pixels as one pass."""
    import aecore.models.base as base
    model = make_tiny(name)
    torch.manual_seed(0)
    x = torch.rand(1, 3, 256, 320)
    y = torch.randn(1, 12, 16, 20)
    with torch.no_grad():
        whole = model.analysis(x), model.synthesis(y)
        monkeypatch.setattr(base, "TILE", 128)  # a 2x3 grid of tiles
        tiles = model.analysis(x), model.synthesis(y)
    for a, b in zip(tiles, whole):
        assert a.shape == b.shape
        # oneDNN may pick another float32 kernel for a tile's shape: a rare element then differs
        # in its last bits (seen: 1 of 3840 by 1e-3); a seam would move whole rows of them.
        diff = (a - b).abs()
        assert diff.max() < 5e-3 and diff.mean() < 1e-5


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_analysis_reach_bounds_what_a_latent_depends_on(name):
    """`analysis_reach` (which sets the analysis tiles' context) against autograd: the input pixels
    one latent's value depends on lie within it; for the hyperprior (smooth GDN, no pooling that
    picks one pixel) they fill it exactly."""
    from aecore.models.base import LATENT_FACTOR, analysis_reach
    model = make_tiny(name)
    before, after = analysis_reach(model.g_a)
    x = torch.rand(1, 3, 256, 256, requires_grad=True)
    i = 8  # a latent far from the borders: its block starts at 128
    model.g_a(x)[0, :, i, i].sum().backward()
    rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 3))).ravel()
    cols = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 2))).ravel()
    start = LATENT_FACTOR * i
    for span in (rows, cols):
        assert start - before <= span.min() and span.max() <= start + after
        if name == "tiny-hyper":
            assert (span.min(), span.max()) == (start - before, start + after)
    assert model.analysis_margin() % LATENT_FACTOR == 0 and model.analysis_margin() <= model.margin
    with pytest.raises(ValueError, match="receptive-field"):
        analysis_reach(torch.nn.Sequential(torch.nn.Upsample(scale_factor=2)))


def test_a_deepened_seed_computes_the_same_function_and_stream():
    torch.manual_seed(0)
    shallow = build_model(ModelConfig(arch="seed", channels=8, latent_channels=12)).eval()
    deep = shallow.deepened(2).eval()
    assert deep.config.depth == 2
    convs = lambda m: sum(isinstance(l, torch.nn.Conv2d) for l in m.modules())  # noqa: E731
    assert convs(deep) == convs(shallow) + 9  # one more per stage: 4 down, 5 up
    x = torch.rand(1, 3, 48, 80)
    with torch.no_grad():
        assert torch.allclose(shallow(x, torch.tensor([3.0]))["x_hat"], deep(x, torch.tensor([3.0]))["x_hat"])
    assert shallow.compress(x, 3.0) == deep.compress(x, 3.0)
    # and it trains: the new convolutions are ordinary parameters
    deep.train()
    loss = deep(x, torch.tensor([3.0]))["x_hat"].square().mean()
    loss.backward()
    assert deep.g_s[2].weight.grad is not None and deep.g_s[2].weight.grad.abs().sum() > 0


def test_training_from_seed_weights_with_more_depth_deepens_them(tmp_path, photo, monkeypatch):
    from PIL import Image
    from aecore import weights
    from aecore.train import TrainConfig, train
    monkeypatch.setenv("AECORE_USER_WEIGHTS", str(tmp_path / "w"))
    torch.manual_seed(0)
    weights.save(build_model(ModelConfig(arch="seed", channels=8, latent_channels=12)), "tiny-seed", tmp_path / "w")
    (tmp_path / "img").mkdir()
    Image.fromarray(np.ascontiguousarray(photo[:80, :80])).save(tmp_path / "img" / "a.png")
    card = train(TrainConfig(data=str(tmp_path / "img"), init="tiny-seed", out="deeper", depth=2, steps=2,
                             batch_size=1, crop=64, run_dir=str(tmp_path / "run"), weights_dir=str(tmp_path / "w")))
    assert card["config"]["depth"] == 2
    model, _ = weights.load("deeper")
    assert model.config.depth == 2 and len(model.g_a) > 13


def test_a_seed_with_a_hyperprior_keeps_its_transforms_and_trains_from_seed_weights(tmp_path, photo, monkeypatch):
    """`--model seed-hyperprior --init SEED` keeps the trained transforms and gains: the same y,
    and on the integer grid the same picture; only the entropy model that codes y is new."""
    from PIL import Image
    from aecore import weights
    from aecore.train import TrainConfig, train
    seed = make_tiny("tiny-seed")
    both = seed.with_hyperprior().eval()
    assert both.arch == "seed-hyperprior" and both.margin == seed.margin and both.decode_dtype == torch.float32
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y = seed.analysis(x) * seed.gain.gain(torch.tensor([4.0]))
        torch.testing.assert_close(both.analysis(x) * both.gain.gain(torch.tensor([4.0])), y)
        grid = torch.round(y) * seed.gain.inverse_gain(torch.tensor([4.0]))
        torch.testing.assert_close(both.synthesis(grid, dtype=torch.float32), seed.synthesis(grid, dtype=torch.float32))
    monkeypatch.setenv("AECORE_USER_WEIGHTS", str(tmp_path / "w"))
    weights.save(seed, "tiny-seed", tmp_path / "w")
    (tmp_path / "img").mkdir()
    Image.fromarray(np.ascontiguousarray(photo[:80, :80])).save(tmp_path / "img" / "a.png")
    card = train(TrainConfig(data=str(tmp_path / "img"), init="tiny-seed", model="seed-hyperprior", out="seedhp",
                             steps=2, batch_size=1, crop=64, run_dir=str(tmp_path / "run"),
                             weights_dir=str(tmp_path / "w")))
    assert card["config"]["arch"] == "seed-hyperprior"
    trained, _ = weights.load("seedhp")
    assert isinstance(trained, type(both)) and trained.config.depth == 2


@pytest.mark.parametrize("name", ["tiny-hyper", "tiny-seedhp"])
def test_an_extended_ladder_keeps_the_trained_levels_and_continues_the_top(name):
    """`train --levels` adds levels above the top: the trained levels code the same streams, the
    new lambdas and log-gains continue the top two levels' steps, and a top quality is a finer one."""
    model = make_tiny(name)
    wider = model.extended(model.levels + 2).eval()
    lams, old = wider.config.lambdas, model.config.lambdas
    assert wider.levels == model.levels + 2 and lams[:model.levels] == old
    assert lams[-1] == pytest.approx(old[-1] * (old[-1] / old[-2]) ** 2, rel=1e-4)
    gains = [wider.gain.gain(torch.tensor([float(q)])).flatten() for q in range(1, wider.levels + 1)]
    top_step = gains[model.levels - 1].log() - gains[model.levels - 2].log()
    torch.testing.assert_close(gains[-1].log() - gains[-2].log(), top_step)
    x = torch.rand(1, 3, 64, 64)
    for q in (1.0, 2.5, float(model.levels)):
        assert wider.compress(x, q) == model.compress(x, q)
    assert sum(map(len, wider.compress(x, float(wider.levels)))) > sum(map(len, model.compress(x, float(model.levels))))
    with pytest.raises(ValueError, match="extends only to more"):
        model.extended(model.levels)


def test_training_with_more_levels_extends_the_initial_weights(tmp_path, photo, monkeypatch):
    from PIL import Image
    from aecore import weights
    from aecore.train import TrainConfig, train
    monkeypatch.setenv("AECORE_USER_WEIGHTS", str(tmp_path / "w"))
    weights.save(make_tiny("tiny-hyper"), "tiny-hyper", tmp_path / "w")
    (tmp_path / "img").mkdir()
    Image.fromarray(np.ascontiguousarray(photo[:80, :80])).save(tmp_path / "img" / "a.png")
    card = train(TrainConfig(data=str(tmp_path / "img"), init="tiny-hyper", out="taller", levels=10, steps=2,
                             batch_size=1, crop=64, run_dir=str(tmp_path / "run"), weights_dir=str(tmp_path / "w")))
    assert len(card["config"]["lambdas"]) == 10 and card["quality_range"] == [1, 10]
    model, _ = weights.load("taller")
    assert model.levels == 10 and model.gain.log_gain.shape[0] == 10


def test_gaussian_tables_code_as_scipys_ndtr_tables_do():
    """The tables' CDF avoids importing scipy: every table must code the same bytes as one made
    with scipy.special.ndtr, or streams written before would no longer decode."""
    import constriction
    from scipy.special import ndtr as scipy_ndtr
    from aecore.models import entropy
    x = np.linspace(-8, 8, 20001)
    assert np.allclose(entropy.ndtr(x), scipy_ndtr(x), rtol=1e-9, atol=1e-16)
    for s, pmf in zip(SCALE_TABLE, gaussian_tables()):
        r = len(pmf) // 2
        k = np.arange(-r, r + 1, dtype=np.float64)
        hi, lo = scipy_ndtr((k + 0.5) / s), scipy_ndtr((k - 0.5) / s)
        ref = hi - lo
        ref[0] += lo[0]
        ref[-1] += 1 - hi[-1]
        symbols = np.tile(np.arange(len(pmf), dtype=np.int32), 2)
        ours, theirs = constriction.stream.stack.AnsCoder(), constriction.stream.stack.AnsCoder()
        ours.encode_reverse(symbols, categorical(pmf))
        theirs.encode_reverse(symbols, categorical(ref))
        assert np.array_equal(ours.get_compressed(), theirs.get_compressed())


@pytest.mark.shipped
@pytest.mark.parametrize("name", ["hyperprior", "seed"])
def test_emulated_bfloat16_matches_the_bfloat16_copy(name):
    """Where oneDNN has no fast bfloat16 kernels, coding runs Bfloat16Rounded instead of the
    bfloat16 copy: the same roundings, so the same values up to float32 summation order."""
    from aecore import weights
    from aecore.models.precision import Bfloat16Rounded
    model, _ = weights.load(name)
    copy = model.fast_copy(model.g_s, torch.bfloat16)
    emulated = model.fast_copy(model.g_s, torch.bfloat16, emulated=True)
    assert isinstance(emulated, Bfloat16Rounded) and emulated is not copy
    assert model.fast_copy(model.g_s, torch.bfloat16, emulated=True) is emulated  # built once
    from skimage.data import astronaut
    x = torch.from_numpy(astronaut()[80:144, 160:256].copy()).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        y = torch.round(model.analysis(x) * model.gain.gain(model.quality_tensor(4.0, 1)))
        y = y * model.gain.inverse_gain(model.quality_tensor(4.0, 1))  # a latent as the decoder sees it
        want = copy(y.to(torch.bfloat16)).float()
        got = emulated(y)
    assert got.dtype == torch.float32 and got.shape == want.shape
    # Other kernels sum in another order, which now and then lands on the neighbouring bfloat16:
    # on AVX2 (reference bfloat16 kernels) 28% of the hyperprior's values, by at most 2 grey levels.
    diff = (got - want).abs() * 255
    assert diff.max() < 2.5 and (diff > 0).float().mean() < 0.5
    with torch.inference_mode():  # a float32 synthesis, without the roundings, differs nearly everywhere
        plain = model.fast_copy(model.g_s, torch.float32)(y)
    assert ((plain - want).abs() > 0).float().mean() > 0.9
    assert torch.equal(got, round_to_bf16(got))  # every output is a bfloat16 value


def round_to_bf16(x):
    return x.to(torch.bfloat16).float()


def test_bfloat16_can_be_switched_to_its_emulation(monkeypatch):
    from aecore.models import precision
    monkeypatch.setenv("AECORE_BFLOAT16", "emulate")
    precision.native_bfloat16.cache_clear()
    try:
        assert not precision.native_bfloat16()
        assert precision.compute_dtype("cpu") == torch.float32 and precision.emulated(torch.bfloat16)
        assert not precision.emulated(torch.float32)
        with precision.autocast("cpu"):
            assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32
        model = make_tiny("tiny-hyper")
        x = torch.rand(1, 3, 64, 64)
        with torch.inference_mode():
            y = model.analysis(x)
            assert y.dtype == torch.float32 and torch.equal(y, round_to_bf16(y))
    finally:
        monkeypatch.delenv("AECORE_BFLOAT16")
        precision.native_bfloat16.cache_clear()
    assert precision.compute_dtype("cpu") == (torch.bfloat16 if precision.native_bfloat16() else torch.float32)
