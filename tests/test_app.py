"""The Streamlit app through AppTest: the router, the Compare page and the placeholder pages.

Only the tiny user weights are visible (the shipped folder is pointed elsewhere), so every
run codes with tiny models: fast and offline.
"""
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from aecore import weights

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
PLACEHOLDERS = {"pages/fine_tune.py": "Fine-tune"}  # the other pages: tests/test_app_rd.py


@pytest.fixture
def app(user_weights, tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setattr(weights, "SHIPPED_DIR", tmp_path / "no_shipped_weights")
    return AppTest.from_file(APP, default_timeout=60)


def run_compare(at: AppTest, model: str = "tiny-hyper", sample: str = "Chelsea") -> AppTest:
    at.session_state["model"] = model
    at.run()
    at.selectbox(key="sample").set_value(sample).run()
    assert not at.exception, at.exception
    return at


def table(at: AppTest):
    return at.table[0].value


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def test_shell_runs_and_lists_the_pages(app):
    app.run()
    assert not app.exception
    assert app.title[0].value == "Learned codec vs JPEG"  # Compare is the default page
    picker = app.sidebar.selectbox(key="model")
    assert picker.options == ["tiny-hyper", "tiny-seed"] and picker.value == "tiny-hyper"
    for path, title in PLACEHOLDERS.items():  # switch_page refuses a page st.navigation does not list
        app.switch_page(path).run()
        assert not app.exception
        assert app.title[0].value == title and app.info, path
    app.switch_page("pages/compare.py").run()
    assert not app.exception and app.title[0].value == "Learned codec vs JPEG"


def test_long_model_names_can_be_read_whole(app):
    """A select box cuts a long label to its width; the sidebar's caption and the side's tooltip give all of it."""
    long = "tiny-hyper: a mean-scale hyperprior fine-tuned on forty holiday photos (2026)"
    weights.update_card("tiny-hyper", {"label": long})
    app.run()
    assert not app.exception
    assert app.sidebar.selectbox(key="model").value == "tiny-hyper"
    assert any(long in c.value for c in app.sidebar.caption)
    left = app.selectbox(key="left_codec")
    assert left.value == "tiny-hyper" and long in left.help
    app.selectbox(key="left_codec").set_value("jpeg").run()
    assert "**JPEG**" in app.selectbox(key="left_codec").help  # the tooltip follows the choice


def test_compare_with_a_sample_renders_metrics(app):
    at = run_compare(app)
    assert not at.error
    assert any("PSNR" in m.label for m in at.metric)
    rows = table(at)
    assert "PSNR (dB)" in rows.index and list(rows.columns) == ["tiny-hyper", "JPEG"]
    assert any("autoencoder" in m.value and "PSNR" in m.value for m in at.markdown)
    point = at.session_state["operating_point"]
    assert point["codec"] == "tiny-hyper" and point["image"] == "Chelsea" and point["bpp"] > 0
    assert {b.key for b in at.download_button} >= {"download_aec", "download_png", "download_jpeg"}


def test_quality_slider_reruns(app):
    at = run_compare(app)
    before = at.session_state["operating_point"]
    at.slider(key="quality").set_value(7.5).run()
    assert not at.exception and not at.error
    after = at.session_state["operating_point"]
    assert after["quality"] == 7.5 and before["quality"] != 7.5


def test_the_settle_before_ssimulacra2_waits_only_for_work_not_done_yet(app, monkeypatch):
    """Back at a quality scored before, the scores come from the cache: no pause for them."""
    from pages import shared
    waits = []
    monkeypatch.setattr(shared, "settle", lambda: waits.append(1))
    at = run_compare(app)
    first = len(waits)
    assert first >= 1
    at.slider(key="quality").set_value(7.5).run()
    assert len(waits) == first + 1
    at.slider(key="quality").set_value(4.0).run()
    at.slider(key="quality").set_value(7.5).run()
    assert not at.exception and not at.error and len(waits) == first + 2  # 4.0 was new, 7.5 not


def test_same_size_mode_and_jpeg_quality_mode(app):
    at = run_compare(app, model="tiny-seed")
    assert (at.selectbox(key="left_codec").value, at.selectbox(key="right_codec").value) == ("tiny-seed", "jpeg")
    assert at.radio(key="right_setting").value == "Same size as the other side"
    rows = table(at)
    learned_bytes = int(rows.loc["Size (bytes)", "tiny-seed"].replace(",", ""))
    jpeg_bytes = int(rows.loc["Size (bytes)", "JPEG"].replace(",", ""))
    assert jpeg_bytes <= learned_bytes and not at.warning

    at.radio(key="right_setting").set_value("Quality").run()
    at.slider(key="right_quality_jpeg").set_value(90).run()
    assert not at.exception
    rows = table(at)
    assert rows.loc["Quality setting", "JPEG"] == "90"
    assert int(rows.loc["Size (bytes)", "JPEG"].replace(",", "")) > jpeg_bytes


def test_each_side_any_codec_webp_beside_jpeg_xl_at_its_size(app):
    from aecore import compare as cmp
    from aecore.codecs import get_codec
    from aecore.metrics import ssimulacra2
    at = run_compare(app)
    at.selectbox(key="left_codec").set_value("webp").run()
    at.slider(key="left_quality_webp").set_value(60).run()
    at.selectbox(key="right_codec").set_value("jxl").run()
    assert not at.exception, at.exception
    rows = table(at)
    assert list(rows.columns) == ["WebP", "JPEG XL"]
    from aecore.io import sample_images
    image = sample_images()["Chelsea"]
    expected = cmp.compare_sides(image, cmp.Side("webp", cmp.QUALITY, 60), cmp.Side("jxl", cmp.SAME_AS_OTHER))
    assert int(rows.loc["Size (bytes)", "JPEG XL"].replace(",", "")) == expected.right.num_bytes
    assert rows.loc["Quality setting", "JPEG XL"] == expected.right.quality_text
    score = ssimulacra2(image, get_codec("jxl").decode(expected.right.data))
    assert rows.loc["SSIMULACRA 2 (100 = identical)", "JPEG XL"] == f"{score:.1f}"
    assert any("WebP quality 60 is" in m.value and "JPEG XL" in m.value for m in at.markdown)

    at.radio(key="left_setting").set_value("Target size").run()
    at.number_input(key="left_kb").set_value(9.0).run()
    assert not at.exception
    assert int(table(at).loc["Size (bytes)", "WebP"].replace(",", "")) <= 9000
    at.selectbox(key="right_codec").set_value("original").run()
    assert not at.exception and list(table(at).columns) == ["WebP"]


def test_budget_below_jpeg_quality_1_is_said(app):
    at = run_compare(app, model="tiny-hyper")  # tiny-hyper's stream is far below JPEG's tables alone
    assert any("quality 1" in w.value for w in at.warning)


def test_extra_codec_joins_the_table(app):
    at = run_compare(app)
    at.selectbox(key="extra_codec").set_value("webp").run()
    assert not at.exception
    assert "WebP" in table(at).columns
    assert "download_extra" in {b.key for b in at.download_button}


def test_uploads_good_and_bad(app):
    at = run_compare(app)
    rgba = np.zeros((64, 80, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128
    at.file_uploader(key="upload").set_value(("half clear.png", png_bytes(rgba), "image/png")).run()
    assert not at.exception and not at.error
    assert any("alpha channel composited on white" in i.value for i in at.info)
    assert at.session_state["operating_point"]["image"] == "half clear.png"
    assert at.selectbox(key="sample").disabled

    at.file_uploader(key="upload").set_value(("holiday.png", b"these bytes are no picture", "image/png")).run()
    assert not at.exception
    assert at.error and "holiday.png" in at.error[0].value and "not an image" in at.error[0].value
    assert not at.metric

    truncated = png_bytes(np.full((40, 40, 3), 90, np.uint8))[:60]
    at.file_uploader(key="upload").set_value(("cut.png", truncated, "image/png")).run()
    assert not at.exception and "truncated or corrupt" in at.error[0].value


def test_large_photo_shows_its_copy_first_then_the_full_size_result(app, monkeypatch):
    """A large photo: a labelled result from its copy at once, the full image coded on a background
    task meanwhile, and its result on the next run; unticked, the copy alone."""
    monkeypatch.setattr("aecore.compare.LARGE_PIXELS", 3000)  # read by the page at run time
    monkeypatch.setattr("aecore.compare.PREVIEW_PIXELS", 1200)
    at = run_compare(app)
    picture = np.random.default_rng(0).integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
    at.file_uploader(key="upload").set_value(("wide.png", png_bytes(picture), "image/png")).run()
    assert not at.exception
    assert at.checkbox(key="full_size").value
    assert at.session_state["operating_point"]["size"] == "40x30"  # the preview's copy
    assert not at.table  # its scores and tables come with the full result
    assert any("Preview" in i.value and "80×60 image is being coded in the background" in i.value for i in at.info)
    task = at.session_state["compare_full_task"]
    assert task.finished.wait(60) and task.error is None
    full = task.result
    assert full.original.shape[:2] == (60, 80) and all(r.decoded.shape[:2] == (60, 80) for r in full.results)
    at.run()  # what the preview's label does, polling, once the task is over
    assert not at.exception and at.session_state["operating_point"]["size"] == "80x60"
    assert not any("Preview" in i.value for i in at.info)
    assert "compare_full_task" not in at.session_state
    sizes = [int(v.replace(",", "")) for v in table(at).loc["Size (bytes)"].tolist()]
    assert sizes == [r.num_bytes for r in full.results]  # the full image's files, not the copy's

    at.checkbox(key="full_size").uncheck().run()  # a larger copy alone, no background work
    assert not at.exception and at.session_state["operating_point"]["size"] == "63x47"
    assert "compare_full_task" not in at.session_state and not any("Preview" in i.value for i in at.info)


def test_without_learned_weights_the_page_explains(app, user_weights):
    for card in user_weights.glob("*"):
        card.unlink()
    app.run()
    assert not app.exception
    assert any("No learned weights" in w.value for w in app.warning)
    assert list(table(app).columns) == ["JPEG"]
    assert (app.selectbox(key="left_codec").value, app.selectbox(key="right_codec").value) == ("jpeg", "original")


def test_several_uploads_a_picker_and_a_zip_of_them_all(app):
    import csv
    import zipfile

    from aecore import batch, compare as cmp
    from aecore.codecs.learned import decode_any

    at = run_compare(app)
    rng = np.random.default_rng(1)
    first, second = (rng.integers(0, 256, size=s, dtype=np.uint8) for s in ((48, 64, 3), (40, 56, 3)))
    at.file_uploader(key="upload").set_value([("first.png", png_bytes(first), "image/png"),
                                              ("second.png", png_bytes(second), "image/png")]).run()
    assert not at.exception and not at.error
    pick = at.selectbox(key="upload_pick")
    assert pick.options == ["first.png", "second.png"] and pick.value == "first.png"
    shown = at.session_state["operating_point"]
    assert (shown["image"], shown["size"]) == ("first.png", "64x48")
    assert "download_zip" in {b.key for b in at.download_button}
    pick.set_value("second.png").run()
    assert not at.exception
    assert (at.session_state["operating_point"]["image"], at.session_state["operating_point"]["size"]) == \
        ("second.png", "56x40")
    third = rng.integers(0, 256, size=(32, 40, 3), dtype=np.uint8)  # a file added later is the one shown
    at.file_uploader(key="upload").set_value([("first.png", png_bytes(first), "image/png"),
                                              ("second.png", png_bytes(second), "image/png"),
                                              ("third.png", png_bytes(third), "image/png")]).run()
    assert not at.exception and at.selectbox(key="upload_pick").value == "third.png"
    assert at.session_state["operating_point"]["size"] == "40x32"

    # The zip's builder, with the sides the page has: the left tiny-hyper at its quality, JPEG matched.
    left = cmp.Side("tiny-hyper", cmp.QUALITY, float(at.session_state["quality"]))
    right = cmp.Side("jpeg", cmp.SAME_AS_OTHER)
    data = batch.comparison_zip({"first.png": first, "second.png": second}, left, right)
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert sorted(zf.namelist()) == sorted(
        ["results.csv"] + [f"{s}/{s}.{f}" for s in ("first", "second")
                           for f in ("left.tiny-hyper.aec", "left.tiny-hyper.png", "right.jpeg.jpg", "right.jpeg.png")])
    rows = list(csv.DictReader(io.StringIO(zf.read("results.csv").decode())))
    assert [(r["image"], r["side"], r["codec"]) for r in rows] == [
        ("first.png", "left", "tiny-hyper"), ("first.png", "right", "jpeg"),
        ("second.png", "left", "tiny-hyper"), ("second.png", "right", "jpeg")]
    for stem, pixels in (("first", first), ("second", second)):
        stream = zf.read(f"{stem}/{stem}.left.tiny-hyper.aec")
        decoded = decode_any(stream)
        np.testing.assert_array_equal(decoded, np.array(Image.open(zf.open(f"{stem}/{stem}.left.tiny-hyper.png"))))
        row = next(r for r in rows if r["folder"] == stem and r["side"] == "left")
        assert int(row["bytes"]) == len(stream) and float(row["bpp"]) == pytest.approx(8 * len(stream) / pixels[..., 0].size)
        jpeg = next(r for r in rows if r["folder"] == stem and r["side"] == "right")
        assert int(jpeg["bytes"]) == len(zf.read(f"{stem}/{stem}.right.jpeg.jpg")) <= len(stream) or int(jpeg["over_budget"])
    # the page's numbers for the image it shows are the zip's
    assert int(rows[2]["bytes"]) == at.session_state["operating_point"]["bytes"]


def test_encode_effort_refines_the_learned_side_and_says_how_long(app):
    from aecore import refine
    from aecore.codecs import get_codec
    app.session_state["effort_presets"] = {"balanced": refine.Schedule(3), "best": refine.Schedule(5)}
    at = run_compare(app)
    effort = at.radio(key="left_effort")
    h, w = 300, 451  # Chelsea
    model = get_codec("tiny-hyper").model
    assert effort.value == "fast" and effort.options == [
        "fast", *(f"{e} (about {refine.expected_seconds(model, e, h, w, at.session_state['effort_presets']):.0f} s)"
                  for e in ("balanced", "best"))]
    assert not any(c.endswith("effort") for c in table(at).columns)
    effort.set_value("balanced").run()
    assert not at.exception, at.exception
    assert [c for c in table(at).columns if c.endswith("balanced effort")]  # the refined side's result
    assert "cancel_refinement" not in {b.key for b in at.button}  # finished: no progress bar or Cancel left
    assert at.radio(key="left_effort").value == "balanced"
