"""Rate-distortion: sweep rows, averages, CSV, and BD-rate."""
from __future__ import annotations

import io
import math
import threading
import time

import cv2
import numpy as np
import pytest

from aecore import rd
from aecore.codecs.base import CLASSICAL

ANCHOR_BPP = [0.25, 0.5, 1.0, 2.0]
ANCHOR_PSNR = [27.0, 30.0, 33.0, 36.5]


def test_bd_rate_of_a_halved_rate_is_minus_fifty_percent():
    half = [r * 0.5 for r in ANCHOR_BPP]
    assert rd.bd_rate(ANCHOR_BPP, ANCHOR_PSNR, half, ANCHOR_PSNR) == pytest.approx(-50, abs=1e-9)
    double = [r * 2 for r in ANCHOR_BPP]
    assert rd.bd_rate(ANCHOR_BPP, ANCHOR_PSNR, double, ANCHOR_PSNR) == pytest.approx(100, abs=1e-9)
    assert rd.bd_rate(ANCHOR_BPP, ANCHOR_PSNR, ANCHOR_BPP, ANCHOR_PSNR) == pytest.approx(0, abs=1e-12)


def test_bd_rate_of_two_point_curves_matches_the_hand_computation():
    # log-rate is linear in PSNR (slope ln2 / 2 dB); the test is 1 dB better: 2^(-1/2) of the rate.
    value = rd.bd_rate([1, 2], [30, 32], [1, 2], [31, 33])
    assert value == pytest.approx((2 ** -0.5 - 1) * 100, abs=1e-9)


def test_bd_rate_ignores_dominated_duplicate_and_lossless_points():
    half = [r * 0.5 for r in ANCHOR_BPP]
    noisy_bpp = ANCHOR_BPP + [1.5, 1.2, 8.0]          # worse than (1.0, 33), a tie in PSNR, lossless
    noisy_psnr = ANCHOR_PSNR + [32.0, 33.0, math.inf]
    assert rd.bd_rate(noisy_bpp, noisy_psnr, half, ANCHOR_PSNR) == pytest.approx(-50, abs=1e-9)


def test_bd_rate_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="overlap"):
        rd.bd_rate(ANCHOR_BPP, ANCHOR_PSNR, [1, 2], [40, 42])
    with pytest.raises(ValueError, match="at least 2"):
        rd.bd_rate(ANCHOR_BPP, ANCHOR_PSNR, [1], [30])
    with pytest.raises(ValueError, match="at least 2"):
        rd.bd_rate(ANCHOR_BPP, ANCHOR_PSNR, [1, 1], [30, 30])


def test_bd_table_averages_rows_and_compares_with_the_anchor():
    rows = []
    for image, offset in (("a", -1.0), ("b", 1.0)):
        for q, (bpp, p) in enumerate(zip(ANCHOR_BPP, ANCHOR_PSNR)):
            rows.append({"image": image, "codec": "jpeg", "quality": q, "bpp": bpp, "psnr": p + offset})
            rows.append({"image": image, "codec": "half", "quality": q, "bpp": bpp / 2, "psnr": p + offset})
        rows.append({"image": image, "codec": "lonely", "quality": 1, "bpp": 1.0, "psnr": 30.0})
    table = rd.bd_table(rows, anchor="jpeg", metric="psnr")
    assert table["half"] == pytest.approx(-50, abs=1e-9) and math.isnan(table["lonely"])
    with pytest.raises(ValueError, match="include it in the sweep"):
        rd.bd_table(rows, anchor="webp")
    at = rd.at_rate_table(rows, ANCHOR_BPP[0] / 2)
    assert at["half"] == pytest.approx(ANCHOR_PSNR[0], abs=1e-9) and math.isnan(at["lonely"])
    assert math.isnan(at["jpeg"])  # below the anchor's smallest rate


def test_metric_at_rate_interpolates_in_log_rate_inside_the_curve():
    # two points: linear in log-rate, so halfway in log-rate is halfway in PSNR
    assert rd.metric_at_rate([1, 2], [30, 32], 2 ** 0.5) == pytest.approx(31, abs=1e-9)
    assert rd.metric_at_rate([1, 2], [30, 32], 1) == pytest.approx(30, abs=1e-9)
    assert math.isnan(rd.metric_at_rate([1, 2], [30, 32], 0.5))
    assert math.isnan(rd.metric_at_rate([1, 2], [30, 32], 2.1))


def test_sweep_rows_average_and_csv(tmp_path, photo):
    images = {"rgb": photo[:40, :56], "gray": cv2.cvtColor(photo[40:72, :48], cv2.COLOR_RGB2GRAY)}
    calls = []
    rows = rd.sweep(images, {"jpeg": [30, 70]}, progress=lambda done, total, label: calls.append((done, total)))
    assert len(rows) == 4 and calls[-1] == (4, 4)
    for row in rows:
        h, w = images[row["image"]].shape[:2]
        assert set(row) == {"image", "codec", "quality", "effort", "bytes", "bpp", "psnr", "ssim", "ms_ssim",
                            "ms_ssim_db", "ssimulacra2", "blockiness", "encode_ms", "decode_ms"}
        assert 0 < row["ssimulacra2"] < 100
        assert row["bpp"] == pytest.approx(8 * row["bytes"] / (h * w))
    means = rd.average(rows)
    assert [(m["codec"], m["quality"], m["images"]) for m in means] == [("jpeg", 30, 2), ("jpeg", 70, 2)]
    assert means[0]["bpp"] == pytest.approx(np.mean([r["bpp"] for r in rows if r["quality"] == 30]))

    rd.write_csv(rows, tmp_path / "rd.csv")
    assert rd.read_csv(tmp_path / "rd.csv") == rows
    buffer = io.StringIO()
    rd.write_csv(rows, buffer)
    buffer.seek(0)
    assert rd.read_csv(buffer) == rows


def test_default_qualities_fit_the_codecs():
    for name, cls in CLASSICAL.items():
        lo, hi = cls.quality_range
        assert all(lo <= q <= hi for q in rd.DEFAULT_QUALITIES[name])


def test_learned_weights_sweep_their_own_levels(user_weights):
    """The level count comes from the model: weights trained on 5 levels sweep 1..5."""
    from aecore import weights
    from aecore.models import ModelConfig, build_model, lambda_ladder
    assert rd.sweep_qualities("tiny-hyper") == list(range(1, 9))
    five = build_model(ModelConfig(channels=8, latent_channels=12, lambdas=lambda_ladder(0.001, 0.05, 5)))
    weights.save(five, "five-levels", user_weights)
    assert rd.default_plan(["five-levels", "jpeg"]) == {"five-levels": [1, 2, 3, 4, 5],
                                                      "jpeg": rd.DEFAULT_QUALITIES["jpeg"]}


def test_bd_rate_by_ssimulacra2_on_known_curves():
    """SSIMULACRA 2 runs below zero at low rates; BD-rate takes it as any higher-is-better score.
    Rows swept without it (NaN) give NaN, not a number from the other metrics."""
    bpp, score = [0.1, 0.25, 0.5, 1.0, 2.0], [-12.0, 31.0, 52.0, 70.0, 84.0]
    rows = [{"codec": "jpeg", "quality": q, "bpp": b, "ssimulacra2": s} for q, (b, s) in enumerate(zip(bpp, score))]
    rows += [{"codec": "half", "quality": q, "bpp": b / 2, "ssimulacra2": s} for q, (b, s) in enumerate(zip(bpp, score))]
    rows += [{"codec": "unscored", "quality": q, "bpp": b, "ssimulacra2": math.nan} for q, b in enumerate(bpp)]
    table = rd.bd_table(rows, anchor="jpeg", metric="ssimulacra2")
    assert table["half"] == pytest.approx(-50, abs=1e-9) and math.isnan(table["unscored"])
    # two-point curves: log-rate linear in the score, 10 points better is 2^(-10/20) of the rate
    assert rd.bd_rate([1, 2], [40, 60], [1, 2], [50, 70]) == pytest.approx((2 ** -0.5 - 1) * 100, abs=1e-9)


def test_bd_rate_by_ssimulacra2_averages_the_gap_over_the_overlapping_scores_only():
    """Smooth known curves sampled at different scores: the anchor from -20 to 80, the test from
    5 to 95. The test's log-rate is the anchor's plus a gap that grows along the score, so the
    answer depends on where the mean is taken: exp(mean gap over 5..80) - 1."""
    def log_rate(s):  # a convex curve: each SSIMULACRA 2 point costs more bits near the top
        return np.log(0.05) + 0.03 * (s + 20) + 2e-4 * (s + 20) ** 2

    def gap(s):
        return np.log(0.5) + 0.01 * s

    anchor = np.array([-20.0, 0, 20, 40, 60, 80])
    test = np.array([5.0, 25, 45, 65, 85, 95])
    lo, hi = 5.0, 80.0
    expected = (math.exp(np.log(0.5) + 0.01 * (lo + hi) / 2) - 1) * 100
    got = rd.bd_rate(np.exp(log_rate(anchor)), anchor, np.exp(log_rate(test) + gap(test)), test)
    assert got == pytest.approx(expected, abs=0.5)
    assert abs(got - (math.exp(np.log(0.5) + 0.01 * 50) - 1) * 100) > 4  # the mean over 5..95 is another answer
    # the same curves as sweep rows, higher-is-better like PSNR: the test needs fewer bits
    rows = [{"codec": "jpeg", "quality": i, "bpp": float(np.exp(log_rate(s))), "ssimulacra2": s}
            for i, s in enumerate(anchor)]
    rows += [{"codec": "other", "quality": i, "bpp": float(np.exp(log_rate(s) + gap(s))), "ssimulacra2": s}
             for i, s in enumerate(test)]
    assert rd.bd_table(rows, "jpeg", "ssimulacra2")["other"] == pytest.approx(got, abs=1e-9) and got < 0


def test_average_gives_nan_for_a_metric_some_rows_lack():
    rows = [{"image": "a", "codec": "jpeg", "quality": 5, "bpp": 0.2, "ssimulacra2": 40.0},
            {"image": "b", "codec": "jpeg", "quality": 5, "bpp": 0.4}]
    mean, = rd.average(rows)
    assert mean["bpp"] == pytest.approx(0.3) and math.isnan(mean["ssimulacra2"]) and mean["images"] == 2


def test_sweep_can_leave_ssimulacra2_out(photo):
    row, = rd.sweep({"p": photo}, {"jpeg": [50]}, perceptual=False)
    assert math.isnan(row["ssimulacra2"]) and row["psnr"] > 25


def test_default_codecs_leave_fine_tuned_weights_out_when_models_are_shipped(user_weights):
    from aecore import weights
    from aecore.codecs import classical_names
    from aecore.rd import default_codecs
    from tests.conftest import make_tiny
    assert default_codecs() == ["tiny-hyper", "tiny-seed"] + classical_names()  # nothing shipped: all learned
    weights.save(make_tiny("tiny-hyper"), "shipped-one", weights.SHIPPED_DIR)
    assert default_codecs() == ["shipped-one"] + classical_names()


def test_in_parallel_gives_each_point_once_with_the_sequential_values(photo):
    """The Rate-distortion page measures two points at a time: every call's result comes back once,
    under its own index, equal to the same point measured alone; the calls start in list order."""
    plan = [("jpeg", 30), ("webp", 50), ("jpeg", 80), ("webp", 20), ("jpeg2000", 40)]
    started, lock = [], threading.Lock()

    def call(codec, q):
        with lock:
            started.append((codec, q))
        return rd.point(codec, "img", photo, q, perceptual=False)

    got = dict(rd.in_parallel([lambda c=c, q=q: call(c, q) for c, q in plan], workers=2))
    assert sorted(got) == list(range(len(plan)))
    assert started[:2] == plan[:2] and sorted(started) == sorted(plan)
    for i, (codec, q) in enumerate(plan):
        alone = rd.point(codec, "img", photo, q, perceptual=False)
        assert {k: got[i][k] for k in rd.METRICS} == {k: alone[k] for k in rd.METRICS}, (codec, q)


def test_in_parallel_raises_a_calls_error_and_drops_what_has_not_started():
    ran = []

    def fail():
        raise ValueError("broken point")

    calls = [fail] + [lambda i=i: (time.sleep(0.2), ran.append(i)) for i in range(50)]  # 10 s in all
    with pytest.raises(ValueError, match="broken point"):
        for _ in rd.in_parallel(calls, workers=1):
            pass
    assert len(ran) < 50
