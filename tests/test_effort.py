"""Encode effort through the codec interface, the size search and the command line."""
import csv
import fcntl
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import pytest

from aecore import refine, target
from aecore.codecs import Codec, CodecError, get_codec, with_effort
from aecore.codecs.classical import JPEG
from aecore.measure import measure

ROOT = Path(__file__).resolve().parent.parent
FEW = {"balanced": refine.Schedule(4), "best": refine.Schedule(6)}


@pytest.fixture
def few_presets(monkeypatch):
    """The hyperprior's efforts at FEW's iterations where a test reaches them through the command
    line or a sweep (which take the presets, not an override)."""
    monkeypatch.setitem(refine.PRESETS, "hyperprior", FEW)


def test_an_effort_copy_refines_leaves_the_cached_codec_alone_and_is_timed_once(user_weights, photo):
    cached = get_codec("tiny-hyper")
    seen = []
    view = cached.at_effort("balanced", presets=FEW, progress=lambda done, total: seen.append((done, total)))
    data = view.encode(photo, 3.0)
    assert seen == [(i, 4) for i in range(1, 5)]
    assert get_codec("tiny-hyper") is cached and cached.effort == "fast" and "effort" not in cached.label
    assert view.label.endswith("balanced effort") and view.describe()["effort"] == "balanced"
    assert cached.decode(data).shape == photo.shape  # the plain decoder reads it
    m = measure(view, photo, 3.0, data=data)
    assert len(seen) == 4  # the refined file is not refined again to be timed
    assert m.encode_s == view.encode_seconds(data) > 0 and m.data == data
    assert cached.encode_seconds(cached.encode(photo, 3.0)) is None


def test_classical_codecs_refuse_a_refining_effort():
    jpeg = get_codec("jpeg")
    assert with_effort(jpeg, "fast") is jpeg
    with pytest.raises(CodecError, match="jpeg has one encoder .*learned codecs only"):
        with_effort(jpeg, "best")
    with pytest.raises(CodecError, match="unknown effort 'max'"):
        with_effort(jpeg, "max")


def test_a_size_search_at_effort_searches_fast_then_refines_the_chosen_quality_once(user_weights, photo):
    seen = []
    view = get_codec("tiny-hyper").at_effort("best", presets=FEW, progress=lambda d, t: seen.append(d))
    budget = len(get_codec("tiny-hyper").encode(photo, 5.0))
    fast_q, _ = target.fit(get_codec("tiny-hyper"), photo, budget)
    q, data = target.fit(view, photo, budget)
    assert len(data) <= budget and len(seen) % 6 == 0 and 6 <= len(seen) <= 6 * target.REFINED_TRIES
    assert q <= fast_q
    if len(seen) == 6:  # the first refined file fitted: the fast search's quality
        assert q == fast_q
    assert data == view.encode(photo, q)  # reproducible: the same refinement gives the same file


class Tenfold(Codec):
    """A continuous codec: JPEG at quality round(10 * q); at effort "best" its files are larger
    (JPEG 12 qualities up), so the refined encode of the fast search's quality overshoots."""

    name, continuous, quality_range, effort = "tenfold", True, (1.0, 8.0), "best"
    encodes = 0

    def at_effort(self, effort):
        fast = Tenfold()
        fast.effort = effort
        return fast

    def encode(self, image, quality):
        step = 12 if self.effort == "best" else 0
        type(self).encodes += self.effort == "best"
        return JPEG().encode(image, min(100, round(10 * self.check_quality(quality)) + step))

    def decode(self, data):
        return JPEG().decode(data)


def test_a_size_search_at_effort_searches_lower_when_the_refined_file_overshoots(photo):
    budget = len(JPEG().encode(photo, 60))
    fast_q, _ = target.fit(Tenfold().at_effort("fast"), photo, budget)
    Tenfold.encodes = 0
    q, data = target.fit(Tenfold(), photo, budget)
    assert len(data) <= budget and q < fast_q and 2 <= Tenfold.encodes <= target.REFINED_TRIES
    assert len(Tenfold().encode(photo, fast_q)) > budget  # the first try did overshoot
    with pytest.raises(target.BudgetError):
        target.fit(Tenfold(), photo, len(JPEG().encode(photo, 12)))  # under the refined lowest


def test_command_line_effort_writes_a_stream_the_plain_decoder_reads(user_weights, photo, tmp_path, capsys):
    from aecore.__main__ import main
    src = tmp_path / "in.png"
    Image.fromarray(np.ascontiguousarray(photo[:48, :64])).save(src)  # small: the preset's iterations run twice
    assert main(["compress", str(src), str(tmp_path / "o.jpg"), "--codec", "jpeg", "--effort", "best"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "learned codecs only" in err and not (tmp_path / "o.jpg").exists()
    aec, png = tmp_path / "o.aec", tmp_path / "o.png"
    assert main(["compress", str(src), str(aec), "--codec", "tiny-hyper", "--quality", "4",
                 "--effort", "balanced"]) == 0
    out = capsys.readouterr()
    rec = json.loads(out.out)
    assert rec["effort"] == "balanced" and rec["bytes"] == aec.stat().st_size
    n = refine.PRESETS["hyperprior"]["balanced"].iterations
    assert f"{n}/{n} balanced effort" in out.err  # the progress line, at the preset's iterations
    assert main(["decompress", str(aec), str(png)]) == 0
    capsys.readouterr()
    assert np.array_equal(np.asarray(Image.open(png)), get_codec("tiny-hyper").decode(aec.read_bytes()))
    assert main(["compress", str(src), str(tmp_path / "f.aec"), "--codec", "tiny-hyper", "--quality", "4"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["effort"] == "fast" and "effort" not in out.err
    assert (tmp_path / "f.aec").read_bytes() != aec.read_bytes()


def test_ctrl_c_during_refinement_exits_130_and_leaves_no_file(user_weights, tmp_path):
    rng = np.random.default_rng(0)
    work = tmp_path / "work"
    work.mkdir()
    src = work / "big.png"
    Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)).save(src)
    out = work / "o.aec"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AECORE_USER_WEIGHTS": str(user_weights)}
    proc = subprocess.Popen([sys.executable, "-m", "aecore", "compress", str(src), str(out), "--codec",
                             "tiny-hyper", "--effort", "best"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=ROOT,
                            # as a terminal's Ctrl-C finds it: a run started in the background
                            # (`cmd &`) would pass on SIGINT ignored, and Python then keeps it ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # A one-page pipe: the child blocks on its progress lines until they are read, so it cannot
    # finish the refinement before the signal, however fast the machine or slow this process.
    fcntl.fcntl(proc.stderr.fileno(), fcntl.F_SETPIPE_SZ, 4096)
    seen, deadline = b"", time.monotonic() + 240
    while b"best effort" not in seen and time.monotonic() < deadline and proc.poll() is None:
        seen += os.read(proc.stderr.fileno(), 4096)  # the first progress line: the refinement runs
    assert b"best effort" in seen and b"400/400" not in seen
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert stderr.decode().strip().splitlines()[-1] == "aecore: cancelled; no file was left half-written"
    assert stdout == b"" and sorted(p.name for p in work.iterdir()) == ["big.png"]


def test_sweeps_record_each_rows_effort_and_encode_time(user_weights, tmp_path, capsys, few_presets):
    from aecore import rd
    from aecore.__main__ import main
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    rows = rd.sweep({"a": image}, {"tiny-hyper": [2], "jpeg": [50]}, effort="balanced", perceptual=False)
    assert [(r["codec"], r["effort"]) for r in rows] == [("tiny-hyper", "balanced"), ("jpeg", "fast")]
    assert rows[0]["bytes"] == len(get_codec("tiny-hyper").at_effort("balanced").encode(image, 2))
    assert all(r["encode_ms"] > 0 for r in rows)
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(image).save(folder / "a.png")
    assert main(["rd", "--images", str(folder), "--codecs", "jpeg", "--effort", "best",
                 "--out", str(tmp_path / "rd.csv")]) == 0
    assert "refines the learned codecs only; jpeg coded as always" in capsys.readouterr().err
    assert {r["effort"] for r in csv.DictReader(open(tmp_path / "rd.csv"))} == {"fast"}


def test_a_background_comparison_reports_progress_and_cancels(user_weights, photo):
    import threading
    from aecore import background, compare
    first = threading.Event()
    side = compare.Side("tiny-hyper", compare.QUALITY, 3.0, effort="best")
    work = lambda progress, cancel: compare.compare_sides(  # noqa: E731
        photo, side, compare.Side("jpeg", compare.SAME_AS_OTHER), perceptual=False,
        refining={"presets": {"best": refine.Schedule(10_000)}, "cancel": cancel,
                  "progress": lambda d, t: (progress(d, t), first.set())})
    task = background.Task("k", work)
    assert first.wait(120) and 0 < task.fraction < 1 and task.total == 10_000
    task.cancel()
    assert task.finished.wait(120) and task.result is None
    assert isinstance(task.error, refine.Cancelled) and task.done < 10_000
    done = background.Task("k2", lambda progress, cancel: compare.compare_sides(
        photo, compare.Side("tiny-hyper", compare.QUALITY, 3.0, effort="balanced"),
        compare.Side("jpeg", compare.SAME_AS_OTHER), perceptual=False, refining={"presets": FEW, "progress": progress, "cancel": cancel}))
    assert done.finished.wait(120) and done.error is None and done.fraction == 1
    learned, jpeg = done.result.results
    assert learned.label.endswith("balanced effort") and (jpeg.num_bytes <= learned.num_bytes or jpeg.over_budget)
    with pytest.raises(CodecError, match="learned codecs only"):
        compare.compare_sides(photo, compare.Side("jpeg", compare.QUALITY, 50, effort="best"),
                              compare.Side("original"))
