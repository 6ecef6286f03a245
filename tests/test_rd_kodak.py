"""The Kodak benchmark's point cache and its SSIMULACRA 2 column added to an existing sweep,
with real codecs and the real metric on a small crop."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from aecore import rd
from aecore.codecs import get_codec
from aecore.metrics import ssimulacra2

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("rd_kodak", ROOT / "benchmarks" / "rd_kodak.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_add_ssimulacra2_scores_each_point_keeps_the_rest_and_resumes_from_the_cache(bench, photo, tmp_path):
    jpeg, webp = get_codec("jpeg"), get_codec("webp")
    swept = [rd.point(jpeg, "p", photo, 30, perceptual=False), rd.point(jpeg, "p", photo, 60, perceptual=False)]
    stale = {**rd.point(webp, "p", photo, 50, perceptual=False), "bytes": 1234, "psnr": 20.0}  # an older encoder's
    elsewhere = {**swept[0], "image": "not-loaded"}
    rows = [{k: v for k, v in r.items() if k != "ssimulacra2"} for r in swept] + [stale, elsewhere]
    cache = tmp_path / "cache" / "points.jsonl"

    out, recoded = bench.add_ssimulacra2(rows, {"p": photo}, None, cache, jobs=1)
    for row, before in zip(out[:2], swept):
        decoded = jpeg.decode(jpeg.encode(photo, before["quality"]))
        assert row["ssimulacra2"] == pytest.approx(ssimulacra2(photo, decoded), abs=1e-9)
        assert {k: v for k, v in row.items() if k != "ssimulacra2"} == {k: v for k, v in before.items()
                                                                       if k != "ssimulacra2"}
        assert list(row)[:4 + len(rd.METRICS)] == ["image", "codec", "quality", "effort", *rd.METRICS]
    fresh = webp.encode(photo, 50)
    assert out[2]["bytes"] == len(fresh) and out[2]["psnr"] > 20 and math.isfinite(out[2]["ssimulacra2"])
    assert len(recoded) == 1 and "p webp q=50: 1234 B" in recoded[0]
    assert out[3] == elsewhere  # an image not given stays as it was, unscored
    old = {k: v for k, v in swept[1].items() if k not in ("ssimulacra2", "effort")}  # swept before effort existed
    older, _ = bench.add_ssimulacra2([old], {"p": photo}, None, cache, jobs=1)
    assert older[0]["effort"] == "fast" and older[0]["ssimulacra2"] == out[1]["ssimulacra2"]
    assert bench.scored_images(out, "ssimulacra2") == ["p"]

    # A second run measures nothing: every point comes from the cache, a line cut short is skipped.
    lines = cache.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["identity"] in ("jpeg", "webp") for line in lines)
    with open(cache, "a") as f:
        f.write('{"identity": "jpeg", "row": {"ima')
    again, _ = bench.add_ssimulacra2(rows, {"p": photo}, None, cache, jobs=1)
    assert again == out and len(cache.read_text().splitlines()) == 4


def test_learned_points_are_cached_for_their_weights_only(bench, photo, tmp_path, user_weights):
    cache = tmp_path / "points.jsonl"
    task = [("p", "tiny-hyper", 3)]
    first, = bench.measure_points({"p": photo}, task, cache)
    assert json.loads(cache.read_text())["identity"] == get_codec("tiny-hyper").hash.hex()
    entry = json.loads(cache.read_text())
    cache.write_text(json.dumps({**entry, "identity": "0" * 16}) + "\n")  # made by other weights
    second, = bench.measure_points({"p": photo}, task, cache)
    assert len(cache.read_text().splitlines()) == 2  # measured again, not taken from the other weights'
    assert second["bytes"] == first["bytes"]


def test_an_effort_is_a_curve_of_its_own_cached_with_its_preset(bench, photo, tmp_path, user_weights, monkeypatch):
    from aecore import refine
    monkeypatch.setitem(refine.PRESETS, "hyperprior", {"balanced": refine.Schedule(7), "best": refine.Schedule(9)})
    cache = tmp_path / "points.jsonl"
    row, = bench.measure_points({"p": photo}, [("p", "tiny-hyper@balanced", 3)], cache)
    assert (row["codec"], row["effort"]) == ("tiny-hyper@balanced", "balanced")
    assert row["bytes"] == len(get_codec("tiny-hyper").at_effort("balanced").encode(photo, 3))
    identity = json.loads(cache.read_text())["identity"]
    assert identity.startswith(get_codec("tiny-hyper").hash.hex() + "@balanced:") and "iterations=7" in identity
