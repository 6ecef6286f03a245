"""Exported reports: matched sizes, the figure, the CSV against `aecore.rd`, reproducibility, the CLI."""
import csv
import html as html_lib
import io
import json
import re

import numpy as np
from PIL import Image
import pytest

from aecore import rd, report
from aecore.__main__ import main
from aecore.codecs import get_codec

from .test_cli import cli
from .test_compare import smooth  # noqa: F401  (a fixture)


@pytest.fixture
def shot(photo):
    """A second small picture, so reports hold more than one image."""
    from skimage.data import coffee
    return np.ascontiguousarray(coffee()[40:136, 100:228])


@pytest.fixture
def few_qualities(monkeypatch):
    """Four classical qualities in the sweeps in place of nineteen: what is compared here (two
    sweeps, two builds, what a page holds) is the same whatever the list."""
    for name in ("jpeg", "webp"):
        monkeypatch.setitem(rd.DEFAULT_QUALITIES, name, [20, 40, 60, 80])


def test_targets_parse_and_refuse():
    for bad in ("", "25 GB", "-3KB", "KB", "0"):
        with pytest.raises(ValueError):
            report.Target.parse(budget=bad)
    assert report.Target.parse(bpp="0.25").bytes_for((96, 128)) == 384  # 0.25 * 12288 / 8
    assert report.Target.parse(budget="2KB").bytes_for((96, 128)) == 2000
    assert report.Target().bytes_for((96, 128)) is None
    with pytest.raises(ValueError, match="not two"):
        report.Target(budget=10, bpp=0.1)
    with pytest.raises(ValueError, match="bits per pixel"):
        report.Target.parse(bpp="lots")
    with pytest.raises(ValueError, match="positive"):
        report.Target.parse(bpp="-1")


def test_the_learned_file_fits_the_budget_and_jpeg_is_no_larger(user_weights, smooth):
    item = report.make_item("p", smooth, "tiny-seed", report.Target(budget=2000))
    learned, jpeg = item.learned, item.jpeg
    assert learned.num_bytes <= 2000 and not jpeg.over_budget and jpeg.num_bytes <= learned.num_bytes
    assert len(get_codec("jpeg").encode(smooth, jpeg.quality + 1)) > learned.num_bytes
    assert item.budget == 2000 and not item.comparison.notes


def test_the_learned_quality_is_the_highest_that_fits(user_weights, smooth):
    item = report.make_item("p", smooth, "tiny-hyper", report.Target(budget=500))
    assert item.learned.num_bytes <= 500 and 1 < item.learned.quality < 8
    assert len(get_codec("tiny-hyper").encode(smooth, item.learned.quality + 0.02)) > 500
    tight = report.make_item("p", smooth, "tiny-hyper", report.Target(budget=50))
    assert tight.learned.quality == 1 and tight.learned.over_budget
    assert "more than the 50 B budget" in tight.comparison.notes[0]
    assert tight.jpeg.over_budget  # and JPEG, which needs more still, says so too


def test_report_rows_equal_rd_at_the_same_qualities(user_weights, photo, shot):
    built = report.build({"a": photo, "b": shot}, "tiny-hyper", report.Target(bpp=0.9), ["webp"], with_rd=False)
    table = report.rows(built)
    assert [(r["image"], r["codec"]) for r in table] == [(i, c) for i in "ab" for c in ("tiny-hyper", "jpeg", "webp")]
    images = {"a": photo, "b": shot}
    for row in table:
        ref, = rd.sweep({row["image"]: images[row["image"]]}, {row["codec"]: [row["quality"]]})
        assert {k: row[k] for k in rd.METRICS} == {k: ref[k] for k in rd.METRICS}
    back = rd.read_csv(io.StringIO(report.csv_text(table)))
    assert [r["psnr"] for r in back] == [r["psnr"] for r in table]  # the CSV keeps every digit


def test_figure_size_and_labels(user_weights, photo):
    built = report.build({"p": photo}, "tiny-hyper", report.Target(budget=1500), ["webp"], command="cmd",
                         with_rd=False)
    item = built.items[0]
    png = report.figure_png(item, built.provenance, panel=192)
    img = Image.open(io.BytesIO(png))
    panel, gap, margin = 192, 192 // 16, 192 // 12
    assert img.width == 2 * margin + 5 * panel + 4 * gap  # whole picture, original, learned, JPEG, WebP
    labels = json.loads(img.text["Labels"])
    assert [name for name, _, _ in labels] == ["Whole picture", "Original", "tiny-hyper (learned)", "JPEG", "WebP"]
    jpeg = item.jpeg
    assert labels[3][1] == f"{jpeg.num_bytes} B · {jpeg.metrics['bpp']:.3f} bpp"  # under 1000 B
    assert labels[3][2].startswith(f"PSNR {jpeg.metrics['psnr']:.2f} dB")
    assert img.text["Title"] == item.verdict and "Rebuild: cmd" in img.text["Description"]
    boxes = json.loads(img.text["Panels"])
    assert len(boxes) == 5 and all(w <= panel and h <= panel for _, _, w, h in boxes)
    gray, rgb = np.asarray(img.convert("L")), np.asarray(img)
    for i, (x, y, w, h) in enumerate(boxes):  # each caption under its picture is drawn (dark text on white)
        caption = gray[y + h + gap // 2: y + h + 3 * panel // 8, x - (panel - w) // 2: x + w]
        assert (caption < 128).sum() > 50, f"no caption under panel {i}"
    z = item.zoom
    for (x, y, w, h), pixels in zip(boxes[1:], [photo, *(r.decoded for r in item.comparison.results)]):
        k = w // z.size  # each crop is enlarged by a whole factor, nearest neighbour: its pixels exactly
        assert k >= 1 and w == h == z.size * k
        assert np.array_equal(rgb[y: y + h: k, x: x + w: k], pixels[z.slice])


def test_html_is_self_contained(user_weights, photo, few_qualities):
    built = report.build({"p": photo}, "tiny-hyper", report.Target(budget=1500), command="cmd")
    page = report.html_report(built)
    # Every resource the page or its slider loads is inline: no src/href that leaves the file. Script
    # bodies are left out of this look (Plotly's code holds a link to its site for its logo, which the
    # report turns off); what scripts fetch when they run is checked in the browser (test_browser_report).
    srcdoc = re.findall(r'srcdoc="([^"]*)"', page)
    for text in [page, *map(html_lib.unescape, srcdoc)]:
        text = re.sub(r"(<script\b[^>]*>).*?</script>", r"\1</script>", text, flags=re.S)
        for attr, value in re.findall(r'\b(src|href)\s*=\s*"([^"]*)"', text):
            assert value.startswith(("data:", "#")), (attr, value[:80])
        assert "<link" not in text and "@import" not in text and "url(http" not in text
    assert built.provenance["weights_sha256"] in page and "cmd" in page
    assert "Plotly.newPlot" in page and page.count("<script") >= 2  # Plotly's library inline, then the chart


def test_reports_rebuild_byte_for_byte(user_weights, photo, shot, tmp_path, few_qualities):
    def make(out):
        built = report.build({"a": photo, "b": shot}, "tiny-hyper", report.Target(budget=1500), ["webp"],
                             command="cmd")
        return {p.name: p.read_bytes() for p in report.write(built, out)}

    first, second = make(tmp_path / "one"), make(tmp_path / "two")
    assert set(first) == {"a.png", "b.png", "a.tiny-hyper.aec", "b.tiny-hyper.aec", "a.jpeg.jpg", "b.jpeg.jpg",
                          "a.webp.webp", "b.webp.webp", "report.csv", "rd.csv", "report.html"}
    assert first == second


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_cli_report_numbers_equal_cli_rd(user_weights, photo, shot, tmp_path, capsys, few_qualities):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "a.png")
    Image.fromarray(shot).save(folder / "b.png")
    rc, out, err = cli(capsys, "report", folder, "--budget", "1.5KB", "--codecs", "tiny-hyper,jpeg",
                       "--out", tmp_path / "rep")
    assert rc == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[-1]["files"][-1] == "report.html"
    assert lines[0]["codecs"]["tiny-hyper"]["bytes"] <= 1500
    rc, _, err = cli(capsys, "rd", "--images", folder, "--codecs", "tiny-hyper,jpeg", "--out", tmp_path / "rd.csv")
    assert rc == 0, err
    ours, theirs = _csv(tmp_path / "rep" / "rd.csv"), _csv(tmp_path / "rd.csv")
    assert [{k: r[k] for k in ours[0]} for r in theirs] == ours  # every column but the coding times
    # The matched points are the rd numbers at the qualities the report chose.
    points = _csv(tmp_path / "rep" / "report.csv")
    assert {(p["image"], p["codec"]) for p in points} == {(i, c) for i in "ab" for c in ("tiny-hyper", "jpeg")}
    images = {"a": photo, "b": shot}
    for p in points:
        ref, = rd.sweep({p["image"]: images[p["image"]]}, {p["codec"]: [float(p["quality"])]})
        assert {k: float(p[k]) for k in rd.METRICS} == pytest.approx({k: float(ref[k]) for k in rd.METRICS},
                                                                       rel=1e-12)
    html_text = (tmp_path / "rep" / "report.html").read_text()
    assert "python -m aecore report" in html_text and "--budget 1500" in html_text


def test_cli_report_refuses_bad_settings(user_weights, tmp_path, capsys):
    cases = [(["--samples", "Astronaut", "--budget", "lots"], "invalid size 'lots'"),
             (["--samples", "Astronaut", "--codecs", "jpeg"], "name one learned codec"),
             (["--samples", "Nobody", "--codecs", "tiny-hyper"], "no sample image 'Nobody'"),
             ([str(tmp_path / "missing.png"), "--codecs", "tiny-hyper"], "missing.png")]
    for args, message in cases:
        assert main(["report", *args, "--out", str(tmp_path / "r")]) == 2, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()
