"""Encode-time refinement: better RD loss, same decoder, bit-exact streams, cancel."""
import threading

import numpy as np
import pytest
import torch

from aecore import refine
from aecore.codecs import get_codec

pytestmark = pytest.mark.shipped  # the trained weights: refinement gains are a property of them


def _image(seed=0, size=64):
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, size)[None, :, None] * np.ones((size, 1, 3))
    return np.clip(base + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ["hyperprior", "seed"])
def test_refined_stream_decodes_bit_exactly_with_the_plain_decoder_and_lowers_the_loss(name):
    codec = get_codec(name)
    img = _image()
    x = torch.tensor(img).permute(2, 0, 1)[None].float().div(255)
    r = refine.refine(codec.model, x, 4.0, refine.Schedule(15, anneal=0.75), seed=0)
    assert r.loss < r.fast_loss
    decoded = codec.decode(codec.stream(r.sections, 64, 64, 4.0, False))
    predicted = r.x_hat[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(decoded, predicted)
    assert r.sections != codec.model.compress(x, 4.0)


def test_refinement_runs_the_copies_a_decode_made_in_inference_mode():
    model = get_codec("seed").model
    kept = dict(model._copies)
    model._copies.clear()  # the copies are built here, the first time, as a decode would
    try:
        with torch.inference_mode():
            for dtype in (torch.bfloat16, torch.float32):
                model.coding_copy(model.g_s, dtype)
            model.prepare_coding()
        x = torch.tensor(_image(size=32)).permute(2, 0, 1)[None].float().div(255)
        r = refine.refine(model, x, 4.0, refine.Schedule(2, anneal=0.1), seed=0)
        assert r.sections
    finally:
        model._copies.clear()
        model._copies.update(kept)


def test_cancel_raises_before_coding():
    codec = get_codec("hyperprior")
    x = torch.tensor(_image()).permute(2, 0, 1)[None].float().div(255)
    event = threading.Event()
    seen = []

    def progress(done, total):
        seen.append(done)
        if done == 3:
            event.set()
    with pytest.raises(refine.Cancelled, match="after 3 of 50"):
        refine.refine(codec.model, x, 2.0, refine.Schedule(50), progress=progress, cancel=event)
    assert seen == [1, 2, 3]


def test_codec_effort_makes_a_stream_the_plain_decoder_reads():
    codec = get_codec("hyperprior")
    img = _image(1)
    data = codec.encode(img, 3.0, effort="balanced")
    assert data != codec.encode(img, 3.0)
    assert codec.decode(data).shape == img.shape
    with pytest.raises(ValueError, match="unknown effort 'max'"):
        codec.encode(img, 3.0, effort="max")


def test_every_schedule_anneals_over_its_own_length():
    """A short schedule ends as cold as a long one: the temperature falls by `anneal` e-folds
    over the whole run, whatever its length, from tau_start at the first iteration."""
    for n in (25, 40, 380):
        s = refine.Schedule(n)
        assert s.temperature(0) == s.tau_start
        assert s.temperature(n) == pytest.approx(s.tau_start * np.exp(-s.anneal))
        assert s.temperature(n // 2) == pytest.approx(s.tau_start * np.exp(-s.anneal / 2), rel=0.05)
    assert refine.Schedule(40).temperature(20) < refine.Schedule(380).temperature(20)


def test_the_expected_time_follows_the_loops_precision(monkeypatch):
    """Where bfloat16 is emulated the loop runs float32, several times slower: the time shown
    before a refinement starts says so."""
    from aecore.models import precision
    model = get_codec("hyperprior").model
    precision.native_bfloat16.cache_clear()
    fast_cpu = refine.expected_seconds(model, "balanced", 512, 768)
    monkeypatch.setenv("AECORE_BFLOAT16", "emulate")
    precision.native_bfloat16.cache_clear()
    try:
        slow_cpu = refine.expected_seconds(model, "balanced", 512, 768)
    finally:
        monkeypatch.delenv("AECORE_BFLOAT16")
        precision.native_bfloat16.cache_clear()
    iterations = refine.PRESETS["hyperprior"]["balanced"].iterations
    assert slow_cpu == pytest.approx(iterations * refine.ITERATION_SECONDS_FLOAT32["hyperprior"] * 0.393216)
    if precision.native_bfloat16():
        assert fast_cpu == pytest.approx(iterations * refine.ITERATION_SECONDS["hyperprior"] * 0.393216)
    else:
        assert fast_cpu == slow_cpu
    assert refine.expected_seconds(model, "fast", 512, 768) == 0.0


@pytest.mark.parametrize("name", ["hyperprior", "seed"])
def test_the_presets_refine_for_the_distortion_the_weights_were_trained_on(name):
    from aecore import weights
    model = get_codec(name).model
    trained = weights.read_card(name)["training"].get("ms_ssim_weight", 0.0)
    assert [refine.schedule(model, e).ms_ssim_weight for e in ("balanced", "best")] == [trained, trained]


def test_a_blended_refinement_lowers_its_own_loss_and_decodes_bit_exactly():
    codec = get_codec("hyperprior")
    img = _image(size=192)  # large enough for MS-SSIM's five scales
    x = torch.tensor(img).permute(2, 0, 1)[None].float().div(255)
    r = refine.refine(codec.model, x, 4.0, refine.Schedule(10, anneal=0.75, ms_ssim_weight=0.25), seed=0)
    assert r.loss < r.fast_loss
    blended, _ = refine.predict(codec.model, x, 4.0, r.latents, 0.25)
    plain, _ = refine.predict(codec.model, x, 4.0, r.latents)
    assert r.loss == pytest.approx(blended) and blended != pytest.approx(plain)
    decoded = codec.decode(codec.stream(r.sections, 192, 192, 4.0, False))
    predicted = r.x_hat[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(decoded, predicted)
