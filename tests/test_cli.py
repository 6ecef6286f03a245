"""The command line as a user runs it: real processes, real files, exit codes."""
import json
import os
from pathlib import Path
import struct
import subprocess
import sys
import zlib

import numpy as np
from PIL import Image
import pytest

from aecore.io import load_image
from aecore.metrics import psnr

ROOT = Path(__file__).resolve().parent.parent


def run(*args, env_weights=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if env_weights:
        env["AECORE_USER_WEIGHTS"] = str(env_weights)
    return subprocess.run([sys.executable, "-m", "aecore", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def test_codecs_lists_json_lines(user_weights):
    out = run("codecs", env_weights=user_weights)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    names = {r["name"] for r in rows}
    assert {"jpeg", "tiny-hyper", "tiny-seed"} <= names
    assert all({"name", "kind", "quality_range"} <= set(r) for r in rows)


def test_compress_decompress_info(user_weights, photo, tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(photo).save(src)
    aec, png = tmp_path / "out.aec", tmp_path / "out.png"
    out = run("compress", src, aec, "--codec", "tiny-hyper", "--quality", 5, env_weights=user_weights)
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)
    size = aec.stat().st_size
    assert rec["bytes"] == size
    assert rec["bpp"] == pytest.approx(8 * size / photo.shape[0] / photo.shape[1])
    out = run("decompress", aec, png, env_weights=user_weights)
    assert out.returncode == 0, out.stderr
    decoded = load_image(png).pixels
    assert decoded.shape == photo.shape
    assert rec["psnr"] == pytest.approx(psnr(photo, decoded), abs=1e-6)
    info = json.loads(run("info", aec).stdout)
    assert info["model"] == "tiny-hyper" and (info["width"], info["height"]) == (128, 96)


def test_jpeg_through_the_same_interface(photo, tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(photo).save(src)
    out = run("compress", src, tmp_path / "o.jpg", "--codec", "jpeg", "--quality", 50)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["bytes"] == (tmp_path / "o.jpg").stat().st_size


def _bomb_png() -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("content, words", [
    (b"", "empty|not an image"),
    (b"hello, this is text", "not an image"),
    (b"<html><body>hi</body></html>", "not an image"),
    (None, "truncated|corrupt"),
    ("bomb", "megapixel"),
])
def test_bad_images_exit_2_with_one_line(tmp_path, photo, content, words):
    import re
    src = tmp_path / "bad.png"
    if content is None:
        Image.fromarray(photo).save(src)
        content = src.read_bytes()[:300]
    elif content == "bomb":
        content = _bomb_png()
    src.write_bytes(content)
    out = run("compress", src, tmp_path / "o.jpg", "--codec", "jpeg")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert "bad.png" in out.stderr and re.search(words, out.stderr, re.I)


def test_bad_streams_exit_2(user_weights, photo, tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(photo).save(src)
    aec = tmp_path / "out.aec"
    assert run("compress", src, aec, "--codec", "tiny-seed", env_weights=user_weights).returncode == 0
    data = aec.read_bytes()
    cases = {"trunc.aec": data[:-7], "flip.aec": data[:40] + bytes([data[40] ^ 1]) + data[41:],
             "magic.aec": b"XXXX" + data[4:]}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        out = run("decompress", tmp_path / name, tmp_path / "x.png", env_weights=user_weights)
        assert out.returncode == 2, (name, out.stderr)
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    # A stream whose weights are not installed.
    out = run("decompress", aec, tmp_path / "x.png", env_weights=tmp_path / "empty")
    assert out.returncode == 2 and "tiny-seed" in out.stderr
    out = run("decompress", tmp_path / "missing.aec", tmp_path / "x.png")
    assert out.returncode == 2 and "missing.aec" in out.stderr
