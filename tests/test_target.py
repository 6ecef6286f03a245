"""Target sizes: the one search every caller uses, and the command line's --target-size/--target-bpp."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import pytest

from aecore import target
from aecore.codecs import Codec, get_codec
from aecore.codecs.classical import JPEG


class CountingJPEG(JPEG):
    """The reference JPEG, counting its encodes."""

    calls = 0

    def encode(self, image, quality):
        type(self).calls += 1
        return super().encode(image, quality)


class TenfoldJPEG(Codec):
    """A continuous codec: JPEG at quality round(10 * q), q in 1..8."""

    name = "tenfold"
    continuous = True
    quality_range = (1.0, 8.0)

    def encode(self, image, quality):
        return JPEG().encode(image, round(10 * self.check_quality(quality)))

    def decode(self, data):
        return JPEG().decode(data)


@pytest.mark.parametrize("text, size", [("25000", 25000), ("25KB", 25000), ("25kb", 25000), ("24.4KiB", 24985),
                                        ("1.5MB", 1_500_000), ("2MiB", 2 * 1024 ** 2), ("300 B", 300)])
def test_parse_size_reads_decimal_and_binary_units(text, size):
    assert target.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "KB", "25 furlongs", "-3KB", "0.0001KB", "1e3"])
def test_parse_size_refuses_what_is_not_a_size(text):
    with pytest.raises(ValueError):
        target.parse_size(text)


def test_bpp_budget_counts_the_whole_file():
    assert target.bpp_budget(0.3, 512, 768) == 14745  # 0.3 * 393216 / 8 = 14745.6, floored
    with pytest.raises(ValueError):
        target.bpp_budget(0, 10, 10)


def test_fit_is_exact_for_integer_qualities(photo):
    codec = CountingJPEG()
    budget = len(codec.encode(photo, 50)) + 40
    codec.calls = 0
    quality, data = target.fit(codec, photo, budget)
    assert codec.calls <= 8
    assert len(data) <= budget and data == codec.encode(photo, quality)
    assert len(codec.encode(photo, quality + 1)) > budget
    assert target.fit("jpeg", photo, 10**9)[0] == 100


def test_fit_below_the_smallest_file_says_the_smallest_size(photo):
    smallest = len(get_codec("jpeg").encode(photo, 1))
    with pytest.raises(target.BudgetError, match=f"the smallest is {smallest} bytes") as e:
        target.fit("jpeg", photo, smallest - 1)
    assert e.value.smallest == smallest
    quality, data = target.fit("jpeg", photo, smallest)  # q=2 may be as small as q=1
    assert len(data) == smallest and len(get_codec("jpeg").encode(photo, quality + 1)) > smallest


def test_fit_bisects_continuous_qualities(photo):
    codec = TenfoldJPEG()
    budget = len(codec.encode(photo, 4.5)) + 20
    quality, data = target.fit(codec, photo, budget, tol=0.01)
    assert len(data) <= budget and data == codec.encode(photo, quality)
    assert len(codec.encode(photo, quality + 0.0101)) > budget
    assert target.fit(codec, photo, 10**9)[0] == 8.0
    with pytest.raises(target.BudgetError):
        target.fit(codec, photo, len(codec.encode(photo, 1.0)) - 1)


def test_fit_leaves_room_for_the_overhead(photo):
    budget = len(get_codec("jpeg").encode(photo, 60))
    quality, data = target.fit("jpeg", photo, budget, overhead=500)
    assert len(data) + 500 <= budget and quality < 60


def test_fit_on_the_learned_codec_searches_the_real_stream(photo, user_weights):
    codec = get_codec("tiny-hyper")
    budget = (len(codec.encode(photo, 2.0)) + len(codec.encode(photo, 6.0))) // 2
    quality, data = target.fit(codec, photo, budget)
    assert len(data) <= budget and data == codec.encode(photo, quality)
    assert len(codec.encode(photo, quality + 0.011)) > budget
    assert quality == round(quality, 3)


def _run(*args):
    return subprocess.run([sys.executable, "-m", "aecore", *args], capture_output=True, text=True)


@pytest.mark.parametrize("codec", ["tiny-hyper", "jpeg", "webp"])
def test_command_line_target_size_fits_and_prints_the_quality(tmp_path, photo, codec, user_weights):
    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    out = tmp_path / f"photo.{get_codec(codec).extension}"
    budget = len(get_codec(codec).encode(photo, get_codec(codec).default_quality))
    # stripped: the budget is a plain stream's (metadata counts against it: tests/test_metadata.py)
    proc = _run("compress", str(src), str(out), "--codec", codec, "--target-size", f"{budget / 1000}KB", "--strip")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["bytes"] == out.stat().st_size <= budget
    assert record["quality"] == target.fit(codec, photo, budget)[0]


def test_command_line_target_bpp_and_a_budget_too_small(tmp_path, photo):
    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    out = tmp_path / "photo.jpg"
    proc = _run("compress", str(src), str(out), "--codec", "jpeg", "--target-bpp", "1.0")
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size <= 96 * 128 / 8
    smallest = len(get_codec("jpeg").encode(photo, 1))
    proc = _run("compress", str(src), str(tmp_path / "tiny.jpg"), "--codec", "jpeg", "--target-size", "100")
    assert proc.returncode == 2
    assert f"the smallest is {smallest} bytes" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "tiny.jpg").exists()
    proc = _run("compress", str(src), str(out), "--target-size", "25 furlongs")
    assert proc.returncode == 2 and "invalid size" in proc.stderr


@pytest.mark.parametrize("name", ["jpeg", "webp"])
def test_a_start_finds_the_same_quality_in_fewer_encodes(photo, name):
    """A search that starts from the last answer (the Compare page's slider moving) gives the
    answer of a search from scratch, wherever it starts, and a nearby start costs fewer encodes."""
    codec = get_codec(name)
    sizes = {q: len(codec.encode(photo, q)) for q in range(1, 101)}
    counted = []

    class Counting:
        def __getattr__(self, attr):
            return getattr(codec, attr)

        def encode(self, image, q):
            counted.append(q)
            return codec.encode(image, q)

    for budget in (sizes[20] + 1, sizes[55], sizes[90] - 1):
        plain = target.fit(codec, photo, budget)
        for start in (2, 19, 54, 56, 89, 99):
            assert target.fit(codec, photo, budget, start=start) == plain
        best = plain[0]
        counted.clear()
        target.fit(Counting(), photo, budget)
        scratch = len(counted)
        counted.clear()
        target.fit(Counting(), photo, budget, start=best)
        assert len(counted) < scratch and len(counted) <= 3
    with pytest.raises(target.BudgetError):
        target.fit(codec, photo, sizes[1] - 1, start=50)
