"""Batches: folders in, trees out, a table, a failing file skipped and named, reruns that skip."""
from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import numpy as np
from PIL import Image

import pytest

from aecore import batch
from aecore.codecs import get_codec
from aecore.io import load_image


def _photo_tree(root, photo):
    (root / "a" / "b").mkdir(parents=True)
    Image.fromarray(photo).save(root / "one.png")
    Image.fromarray(photo[:64, :80]).save(root / "a" / "two.jpg", quality=95)
    Image.fromarray(np.ascontiguousarray(photo[::-1])).save(root / "a" / "b" / "three.png")
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"not really a jpeg" * 10)
    (root / "notes.txt").write_text("not an image, not picked up")


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "aecore", *map(str, args)], capture_output=True, text=True,
                          env=env)


def test_plan_keeps_the_tree_below_each_folder(tmp_path, photo):
    _photo_tree(tmp_path / "in", photo)
    tasks = batch.plan([str(tmp_path / "in"), "loose.png"], str(tmp_path / "out"), ".aec")
    rel = [Path(dst).relative_to(tmp_path / "out").as_posix() for _, dst in tasks]
    assert rel == ["a/b/three.aec", "a/broken.aec", "a/two.aec", "one.aec", "loose.aec"]


def test_a_folder_to_a_target_size_with_one_corrupt_file(tmp_path, photo, user_weights, capsys):
    """The first batch in a real process (its exit code, its two worker processes); the rerun and
    the decompression, one file at a time, in this one."""
    from .test_cli import cli
    _photo_tree(tmp_path / "in", photo)
    out = tmp_path / "out"
    proc = _run("compress", tmp_path / "in", "--out-dir", out, "--codec", "tiny-hyper", "--target-size", "3KB",
                "--json")
    assert proc.returncode == 2, proc.stderr
    assert "broken.jpg" in proc.stderr.strip().splitlines()[-1] and "1 of 4 files failed" in proc.stderr
    result = json.loads(proc.stdout)
    done = [r for r in result["files"] if r["status"] == "done"]
    assert len(done) == 3 and result["summary"]["failed"] == [str(tmp_path / "in" / "a" / "broken.jpg")]
    codec = get_codec("tiny-hyper")
    for r in done:
        data = open(r["output"], "rb").read()
        assert len(data) == r["bytes"] <= 3000
        original = load_image(r["input"]).pixels
        assert codec.decode(data).shape == original.shape
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.aec")) == ["a/b/three.aec", "a/two.aec",
                                                                                "one.aec"]
    assert result["summary"]["bytes_out"] == sum(r["bytes"] for r in done)
    assert np.isclose(result["summary"]["mean_bpp"], np.mean([r["bpp"] for r in done]))

    # Rerun: what is done is skipped, the broken file fails again; decompress the tree back.
    rc, again, _ = cli(capsys, "compress", tmp_path / "in", "--out-dir", out, "--codec", "tiny-hyper",
                       "--target-size", "3KB", "--skip-existing")
    assert rc == 2 and "3 skipped, 1 failed" in again
    rc, back, err = cli(capsys, "decompress", out, "--out-dir", tmp_path / "png", "--workers", "1")
    assert rc == 0, err
    decoded = np.asarray(Image.open(tmp_path / "png" / "a" / "b" / "three.png"))
    assert np.array_equal(decoded, codec.decode((out / "a" / "b" / "three.aec").read_bytes()))
    assert "3 of 3 files done" in back


def test_several_inputs_need_an_out_dir(tmp_path, photo, capsys):
    from .test_cli import cli
    rc, _, err = cli(capsys, "compress", "a.png", "b.png", "c.png", "--codec", "jpeg")
    assert rc == 2 and "--out-dir" in err and err.count("\n") == 1


def test_comparison_zip_keeps_going_past_an_image_it_cannot_code(user_weights, photo):
    import csv
    import io
    import zipfile

    from aecore import compare as cmp
    from aecore.codecs.learned import decode_any
    from aecore.metrics import psnr

    # two stems alike; and pixels no codec takes (four channels), which load_image never gives
    images = {"a.png": photo, "a.jpg": np.ascontiguousarray(photo[:40, :50]), "odd.png": np.zeros((8, 8, 4), np.uint8)}
    left, right = cmp.Side("tiny-hyper", cmp.QUALITY, 3.0), cmp.Side("webp", cmp.TARGET_SIZE, target_kb=1.5)
    zf = zipfile.ZipFile(io.BytesIO(batch.comparison_zip(images, left, right, cmp.Side("jpeg", cmp.SAME_AS_OTHER))))
    rows = list(csv.DictReader(io.StringIO(zf.read("results.csv").decode())))
    assert [(r["folder"], r["side"]) for r in rows if not r["error"]] == [
        (s, w) for s in ("a", "a_2") for w in ("left", "right", "extra")]
    assert [(r["image"], r["folder"]) for r in rows if r["error"]] == [("odd.png", "odd")]
    assert "expected an (H, W, 3) or (H, W) image" in rows[-1]["error"]
    assert not any(n.startswith("odd/") for n in zf.namelist())
    for r in rows:
        if r["error"]:
            continue
        data = zf.read(r["file"])
        assert int(r["bytes"]) == len(data)
        decoded = decode_any(data) if r["codec"] == "tiny-hyper" else get_codec(r["codec"]).decode(data)
        png = r["file"].rsplit(".", 1)[0] + ".png"  # a/a.left.tiny-hyper.aec -> a/a.left.tiny-hyper.png
        np.testing.assert_array_equal(decoded, np.array(Image.open(zf.open(png))))
        original = images[r["image"]]
        assert float(r["psnr"]) == pytest.approx(psnr(original, decoded), abs=1e-9)
    assert int(rows[1]["bytes"]) <= 1500  # the target size side


def test_workers_are_as_many_as_the_memory_holds_for_the_largest_file(tmp_path, photo, user_weights):
    """Each worker may hold the largest file's coding at once: the pool shrinks to what fits,
    never below one worker, and stays as asked where the memory is unknown."""
    per_12mp = batch.WORKER_BASE_BYTES + batch.WORKER_BYTES_PER_PIXEL * 12_000_000
    assert batch.affordable_workers(2, 12_000_000, 2 * per_12mp) == 2
    assert batch.affordable_workers(2, 12_000_000, 2 * per_12mp - 1) == 1
    assert batch.affordable_workers(2, 12_000_000, 10) == 1
    assert batch.affordable_workers(2, 400_000, per_12mp) == 2  # small photos: both workers fit
    assert batch.affordable_workers(3, 12_000_000, None) == 3
    # The largest file is found from headers alone: images and .aec streams; a broken file counts 0.
    Image.fromarray(photo).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((300, 200, 3), np.uint8)).save(tmp_path / "b.jpg")
    (tmp_path / "c.aec").write_bytes(get_codec("tiny-seed").encode(np.zeros((40, 500, 3), np.uint8), 2.0))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    files = [str(tmp_path / n) for n in ("a.png", "b.jpg", "c.aec", "bad.png", "missing.png")]
    assert batch.largest_pixels(files) == max(photo.shape[0] * photo.shape[1], 300 * 200, 40 * 500)
    assert batch.largest_pixels(files[2:]) == 40 * 500
