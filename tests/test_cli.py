"""The command line as a user runs it: real files, exit codes, one line on stderr.

A real process where only one shows the behaviour (a whole run's exit code and output, what
an interpreter imports); the rest call `main()` in this process, which is what the process runs."""
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

from aecore.__main__ import main
from aecore.io import load_image
from aecore.metrics import psnr, ssimulacra2

ROOT = Path(__file__).resolve().parent.parent


def run(*args, env_weights=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if env_weights:
        env["AECORE_USER_WEIGHTS"] = str(env_weights)
    return subprocess.run([sys.executable, "-m", "aecore", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def cli(capsys, *args) -> tuple[int, str, str]:
    """`main()` in this process: its exit code, stdout and stderr."""
    rc = main(list(map(str, args)))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_codecs_lists_json_lines(user_weights, capsys):
    rc, out, err = cli(capsys, "codecs")
    assert rc == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    names = {r["name"] for r in rows}
    assert {"jpeg", "tiny-hyper", "tiny-seed"} <= names
    assert all({"name", "kind", "quality_range"} <= set(r) for r in rows)


def test_compress_decompress_info(user_weights, photo, tmp_path, capsys):
    """The compression in a real process: its exit code and its JSON record on stdout."""
    src = tmp_path / "in.png"
    Image.fromarray(photo).save(src)
    aec, png = tmp_path / "out.aec", tmp_path / "out.png"
    out = run("compress", src, aec, "--codec", "tiny-hyper", "--quality", 5, "--metrics", "full",
              env_weights=user_weights)
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)
    size = aec.stat().st_size
    assert rec["bytes"] == size
    assert rec["bpp"] == pytest.approx(8 * size / photo.shape[0] / photo.shape[1])
    rc, _, err = cli(capsys, "decompress", aec, png)
    assert rc == 0, err
    decoded = load_image(png).pixels
    assert decoded.shape == photo.shape
    assert rec["psnr"] == pytest.approx(psnr(photo, decoded), abs=1e-6)
    assert rec["ssimulacra2"] == pytest.approx(ssimulacra2(photo, decoded), abs=1e-6)
    info = json.loads(cli(capsys, "info", aec)[1])
    assert info["model"] == "tiny-hyper" and (info["width"], info["height"]) == (128, 96)


def test_jpeg_through_the_same_interface(photo, tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(photo).save(src)
    rc, out, err = cli(capsys, "compress", src, tmp_path / "o.jpg", "--codec", "jpeg", "--quality", 50)
    assert rc == 0, err
    assert json.loads(out)["bytes"] == (tmp_path / "o.jpg").stat().st_size


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
def test_bad_images_exit_2_with_one_line(tmp_path, photo, content, words, capsys):
    """The bomb in a real process (the whole run refuses it, in bounded memory); the rest in this one."""
    import re
    src = tmp_path / "bad.png"
    if content is None:
        Image.fromarray(photo).save(src)
        content = src.read_bytes()[:300]
    elif content == "bomb":
        content = _bomb_png()
    src.write_bytes(content)
    if words == "megapixel":
        out = run("compress", src, tmp_path / "o.jpg", "--codec", "jpeg")
        rc, err = out.returncode, out.stderr
    else:
        rc, _, err = cli(capsys, "compress", src, tmp_path / "o.jpg", "--codec", "jpeg")
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "bad.png" in err and re.search(words, err, re.I) and not (tmp_path / "o.jpg").exists()


def test_bad_streams_exit_2(user_weights, photo, tmp_path, monkeypatch, capsys):
    """One real process shows the whole path (exit code, stderr); the other cases run in-process."""
    src = tmp_path / "in.png"
    Image.fromarray(photo).save(src)
    aec = tmp_path / "out.aec"
    assert main(["compress", str(src), str(aec), "--codec", "tiny-seed"]) == 0
    data = aec.read_bytes()
    (tmp_path / "trunc.aec").write_bytes(data[:-7])
    out = run("decompress", tmp_path / "trunc.aec", tmp_path / "x.png", env_weights=user_weights)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    capsys.readouterr()
    cases = {"flip.aec": data[:40] + bytes([data[40] ^ 1]) + data[41:], "magic.aec": b"XXXX" + data[4:]}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        assert main(["decompress", str(tmp_path / name), str(tmp_path / "x.png")]) == 2, name
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()
    # A stream whose weights are not installed.
    monkeypatch.setenv("AECORE_USER_WEIGHTS", str(tmp_path / "empty"))
    assert main(["decompress", str(aec), str(tmp_path / "x.png")]) == 2
    assert "tiny-seed" in capsys.readouterr().err
    assert main(["decompress", str(tmp_path / "missing.aec"), str(tmp_path / "x.png")]) == 2
    assert "missing.aec" in capsys.readouterr().err


def test_a_forged_section_that_decodes_short_exits_2_not_a_wrong_image(user_weights, photo, tmp_path, capsys):
    """A section with words cut out (its length and the CRC rewritten to match, as a forger
    would): the entropy decoder runs out of words before the last symbol. Such streams used
    to decode to a wrong image without a word; now they are a one-line error, exit code 2."""
    from aecore import bitstream
    src, aec = tmp_path / "in.png", tmp_path / "out.aec"
    Image.fromarray(photo).save(src)
    assert main(["compress", str(src), str(aec), "--codec", "tiny-seed"]) == 0
    header, (section,) = bitstream.unpack(aec.read_bytes())
    assert main(["decompress", str(aec), str(tmp_path / "ok.png")]) == 0
    capsys.readouterr()
    for start, stop in ((0, 4), (len(section) // 8 * 4, len(section) // 8 * 4 + 8), (len(section) - 4, None)):
        forged = tmp_path / "forged.aec"
        forged.write_bytes(bitstream.pack(header, [section[:start] + (section[stop:] if stop else b"")]))
        assert main(["decompress", str(forged), str(tmp_path / "x.png")]) == 2, (start, stop)
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "corrupt payload" in err, err
    assert not (tmp_path / "x.png").exists()


def _awkward(tmp_path, photo) -> dict:
    """Odd but valid inputs a user will upload."""
    from PIL import Image as I
    files = {}
    base = I.fromarray(photo)
    files["gray.png"] = base.convert("L")
    rgba = base.convert("RGBA")
    rgba.putalpha(I.fromarray(np.tile(np.arange(128, dtype=np.uint8) * 2, (96, 1))))
    files["rgba.png"] = rgba
    files["palette.png"] = base.convert("P")
    files["cmyk.jpg"] = base.convert("CMYK")
    files["tiny.png"] = base.resize((1, 1))
    files["odd.png"] = base.crop((0, 0, 3, 17))
    paths = {}
    for name, im in files.items():
        paths[name] = tmp_path / name
        im.save(paths[name])
    sixteen = (np.asarray(base.convert("L"), dtype=np.uint16) * 257)
    paths["gray16.png"] = tmp_path / "gray16.png"
    I.fromarray(sixteen).save(paths["gray16.png"])
    exif = base.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    paths["rotated.jpg"] = tmp_path / "rotated.jpg"
    base.save(paths["rotated.jpg"], exif=exif)
    paths["animated.gif"] = tmp_path / "animated.gif"
    base.save(paths["animated.gif"], save_all=True, append_images=[base.rotate(90)], duration=100)
    return paths


def test_awkward_images_compress_and_decompress(user_weights, photo, tmp_path, capsys):
    expected = {"gray.png": (96, 128), "gray16.png": (96, 128), "tiny.png": (1, 1, 3), "odd.png": (17, 3, 3),
                "rotated.jpg": (128, 96, 3)}
    for name, path in _awkward(tmp_path, photo).items():
        aec, png = tmp_path / (name + ".aec"), tmp_path / (name + ".out.png")
        assert main(["compress", str(path), str(aec), "--codec", "tiny-hyper", "--quality", "3"]) == 0, name
        rec = json.loads(capsys.readouterr().out)
        assert main(["decompress", str(aec), str(png)]) == 0, name
        capsys.readouterr()
        decoded = load_image(png).pixels
        assert decoded.shape == expected.get(name, (96, 128, 3)), name
        if name in ("rgba.png", "cmyk.jpg", "gray16.png", "rotated.jpg", "animated.gif", "palette.png"):
            assert rec["notes"], name  # the conversion is reported


@pytest.mark.parametrize("flags, words", [
    (["--lambda-min", "0.001"], "give both or neither"),
    (["--lambda-max", "0.1"], "give both or neither"),
    (["--lambda-min", "0.1", "--lambda-max", "0.001"], "must be positive and below"),
])
def test_train_refuses_half_a_lambda_ladder(tmp_path, flags, words, capsys):
    rc, _, err = cli(capsys, "train", "--data", tmp_path, "--out", "never", "--run-dir", tmp_path / "run", *flags)
    assert rc == 2 and err.startswith("aecore: ") and len(err.splitlines()) == 1
    assert words in err
    assert not (tmp_path / "run").exists()  # refused before anything was made


_DRIVER = """
import json, sys
from aecore.__main__ import main
for argv in json.loads(sys.argv[1]):
    rc = main(argv)
    print("RC", rc, "LOADED", ",".join(m for m in ("torch", "scipy", "aecore.jobs") if m in sys.modules) or "-", file=sys.stderr)
"""


def _modules_after(*commands, env_weights=None) -> list[tuple[int, str]]:
    """Runs main() for each command in turn in one fresh interpreter; returns each one's exit code
    and which of torch, scipy and aecore.jobs the interpreter had imported by its end (so a command that
    follows torch-free ones and shows none imported none itself)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if env_weights:
        env["AECORE_USER_WEIGHTS"] = str(env_weights)
    argvs = json.dumps([list(map(str, command)) for command in commands])
    out = subprocess.run([sys.executable, "-c", _DRIVER, argvs], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120)
    lines = [l.split() for l in out.stderr.splitlines() if l.startswith("RC ")]
    assert len(lines) == len(commands), out.stderr[-2000:]
    return [(int(line[1]), line[3]) for line in lines]


def test_classical_codecs_info_and_fast_metrics_never_import_torch_or_scipy(photo, tmp_path, user_weights,
                                                                            capsys):
    """SSIMULACRA 2 costs more than the rest of the command (scipy's import and its maths): only
    --metrics full imports scipy, and only the learned codecs import torch. No command but the
    fine-tuning ones imports the jobs package (its import is a tenth of a JPEG command's time)."""
    src = tmp_path / "in.png"
    Image.fromarray(photo).save(src)
    assert cli(capsys, "compress", src, tmp_path / "s.aec", "--codec", "tiny-hyper")[0] == 0
    assert _modules_after(("compress", src, tmp_path / "o.jpg", "--codec", "jpeg"),
                          ("info", tmp_path / "s.aec"),
                          ("info", src),  # not a stream: the error path stays torch-free too
                          ("compress", src, tmp_path / "o.aec", "--codec", "tiny-hyper"),
                          ("compress", src, tmp_path / "o.jpg", "--codec", "jpeg", "--metrics", "full"),
                          env_weights=user_weights) == [
        (0, "-"), (0, "-"), (2, "-"),
        (0, "torch"),  # the driver does see torch when a learned codec runs (and no scipy)
        (0, "torch,scipy")]


def test_compress_scores_ssimulacra2_as_the_compare_page_does_on_large_images(tmp_path, capsys):
    """Above 1 MP, SSIMULACRA 2 is scored on copies of at most 1 MP (full size costs minutes
    and gigabytes at 12 MP), and the notes say so; the other metrics are full size."""
    from skimage.data import astronaut
    from aecore.compare import scaled_ssimulacra2
    from aecore.metrics import ms_ssim
    big = np.asarray(Image.fromarray(astronaut()).resize((1280, 900), Image.LANCZOS))
    src, out_jpg = tmp_path / "big.png", tmp_path / "big.jpg"
    Image.fromarray(big).save(src)
    rc, out, err = cli(capsys, "compress", src, out_jpg, "--codec", "jpeg", "--quality", 40, "--metrics", "full")
    assert rc == 0, err
    rec = json.loads(out)
    decoded = load_image(out_jpg).pixels
    assert rec["ssimulacra2"] == pytest.approx(scaled_ssimulacra2(big, decoded), abs=1e-9)
    assert rec["ms_ssim"] == pytest.approx(ms_ssim(big, decoded), abs=1e-12)
    assert any("SSIMULACRA 2 scored on a copy of at most 1 MP" in n for n in rec["notes"])


def test_compress_refuses_an_output_named_for_another_format(user_weights, photo, tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(photo).save(src)
    out = tmp_path / "out.png"
    assert main(["compress", str(src), str(out), "--codec", "tiny-hyper"]) == 2 and not out.exists()
    assert capsys.readouterr().err == (f"aecore: {out}: tiny-hyper writes .aec files, not .png; "
                                       "name the output .aec or pick the codec with --codec\n")
    out = tmp_path / "out.aec"
    assert main(["compress", str(src), str(out), "--codec", "jpeg"]) == 2 and not out.exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "jpeg writes .jpg files, not .aec" in err


def test_compress_writes_the_format_the_extension_names_and_says_so(photo, tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(photo).save(src)
    for name, magic in (("out.webp", lambda b: b[8:12] == b"WEBP"), ("out.jpeg", lambda b: b[:3] == b"\xff\xd8\xff")):
        assert main(["compress", str(src), str(tmp_path / name), "--quality", "60.4"]) == 0
        captured = capsys.readouterr()
        codec = "webp" if name.endswith("webp") else "jpeg"
        assert captured.err == f"aecore: {tmp_path / name}: wrote {codec}, the format its extension names " \
                               "(--codec picks another)\n"
        assert magic((tmp_path / name).read_bytes())
        rec = json.loads(captured.out)
        assert rec["codec"] == codec and rec["quality"] == 60 and isinstance(rec["quality"], int)


def test_decompress_writes_lossless_formats_by_extension_and_refuses_lossy_ones(user_weights, photo, tmp_path,
                                                                              capsys):
    src, aec = tmp_path / "in.png", tmp_path / "s.aec"
    Image.fromarray(photo).save(src)
    assert main(["compress", str(src), str(aec), "--codec", "tiny-hyper"]) == 0
    capsys.readouterr()
    for lossy in ("o.jpg", "o.webp"):
        assert main(["decompress", str(aec), str(tmp_path / lossy)]) == 2 and not (tmp_path / lossy).exists()
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"not .{lossy[2:]}" in err
    assert main(["decompress", str(aec), str(tmp_path / "o.png")]) == 0
    assert capsys.readouterr().err == ""
    png = load_image(tmp_path / "o.png").pixels
    for name, kind in (("o.tif", "TIFF"), ("o.bmp", "BMP"), ("o.ppm", "PPM")):
        assert main(["decompress", str(aec), str(tmp_path / name)]) == 0
        assert capsys.readouterr().err == f"aecore: {tmp_path / name}: wrote {kind}\n"
        with Image.open(tmp_path / name) as im:
            assert im.format == kind and np.array_equal(np.asarray(im), png)


def test_not_found_names_the_path_as_given(user_weights, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    for argv, given in ((["compress", "./sub/../missing.png", "o.jpg"], "./sub/../missing.png"),
                        (["decompress", "./sub/../missing.aec", "o.png"], "./sub/../missing.aec"),
                        (["info", "./sub/../missing.aec"], "./sub/../missing.aec"),
                        (["rd", "--images", "./sub/../none"], "./sub/../none"),
                        (["report", "./sub/../missing.png", "--codecs", "tiny-hyper,jpeg", "--out", "r", "--no-rd"],
                         "./sub/../missing.png")):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"aecore: {given}: no such f") and err.count("\n") == 1, err


def test_help_lists_every_command_and_every_option_has_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    commands = ("codecs", "compress", "decompress", "info", "rd", "report", "train", "finetune", "export",
                "export-onnx")
    listed = [line.split()[0] for line in top.splitlines() if line.startswith("    ") and line[4] != " "]
    assert listed == list(commands)
    for command in commands:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        lines = capsys.readouterr().out.splitlines()
        entries = [i for i, line in enumerate(lines) if line.startswith("  ") and not line.startswith("   ")]
        # argparse prints an option's help after two spaces on its line, or on the next, deeper one
        helpless = [lines[i] for i in entries if "  " not in lines[i].strip()
                    and not (i + 1 < len(lines) and lines[i + 1].startswith(" " * 10))]
        assert entries and not helpless, (command, helpless)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    train = capsys.readouterr().out
    assert "densities and gains learn this much faster: at 1x they need tens of thousands" in " ".join(train.split())


def test_compress_leaves_ssimulacra2_out_unless_asked(photo, tmp_path, capsys):
    """SSIMULACRA 2 is scored with --metrics full only; the default record has every other metric
    (that the process then never imports scipy: test_classical_codecs_info_and_fast_metrics_never_import_torch_or_scipy)."""
    src = tmp_path / "in.png"
    Image.fromarray(photo).save(src)
    rc, out, err = cli(capsys, "compress", src, tmp_path / "o.jpg", "--codec", "jpeg")
    assert rc == 0, err
    rec = json.loads(out)
    assert "ssimulacra2" not in rec and rec["psnr"] > 20 and 0 < rec["ms_ssim"] < 1
