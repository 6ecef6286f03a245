"""The Rate-distortion and Inside-the-model pages through AppTest.

Tiny user weights only (the shipped folder is pointed elsewhere) and small sample photos
(the bundled ones are swapped for 64x96 crops), so a whole sweep takes a second or two.
"""
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from aecore import anchors, rd, weights

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
RD_PAGE, INSIDE_PAGE = "pages/rate_distortion.py", "pages/inside_model.py"
LEARNED = {"tiny-hyper": "tiny-hyper", "tiny-seed": "tiny-seed"}


def crops() -> dict[str, np.ndarray]:
    from skimage import data
    return {"Cat": np.ascontiguousarray(data.chelsea()[100:164, 150:246]),
            "Astronaut": np.ascontiguousarray(data.astronaut()[120:184, 180:276]),
            "Coffee": np.ascontiguousarray(data.coffee()[150:214, 200:296])}


@pytest.fixture
def app(user_weights, tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setattr(weights, "SHIPPED_DIR", tmp_path / "no_shipped_weights")
    monkeypatch.setattr("aecore.io.sample_images", crops)  # read by the pages at run time
    monkeypatch.setattr(anchors, "BENCHMARK_CSV", tmp_path / "no_benchmark" / "kodak_rd.csv")
    return AppTest.from_file(APP, default_timeout=120)


def open_page(at: AppTest, page: str, model: str = "tiny-hyper") -> AppTest:
    at.session_state["model"] = model
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def traces(at: AppTest, index: int = 0) -> list[dict]:
    return json.loads(at.get("plotly_chart")[index].proto.spec)["data"]


def shown_table(at: AppTest) -> dict[str, tuple[str, str]]:
    rows = at.table[0].value
    return {name: (row["For the same PSNR"], row["For the same MS-SSIM"]) for name, row in rows.iterrows()}


def expected_table(rows: list[dict], anchor: str, labels: dict[str, str]) -> dict[str, tuple[str, str]]:
    """The BD-rates `rd.bd_table` gives for the same rows, formatted as the page formats them."""
    fmt = lambda v: "no overlap" if math.isnan(v) else f"{v:+.1f}%"  # noqa: E731
    psnr, ms = rd.bd_table(rows, anchor, "psnr"), rd.bd_table(rows, anchor, "ms_ssim_db")
    return {labels.get(c, c): (fmt(psnr[c]), fmt(ms[c])) for c in psnr}


def page_sweep(images: dict, codecs: list[str]) -> list[dict]:
    """The page's points coded afresh, each learned one from its own analysis (the page reuses one
    per image): learned models at four levels from bottom to top, classical codecs at 8 qualities."""
    plan = {c: [1, 3, 6, 8] if c in LEARNED else [5, 10, 20, 30, 45, 60, 75, 90] for c in codecs}
    return rd.sweep(images, plan)


def test_both_pages_open_from_the_router(app):
    at = open_page(app, RD_PAGE)
    assert at.title[0].value == "Rate-distortion"
    at.switch_page(INSIDE_PAGE).run()
    assert not at.exception and at.title[0].value == "Inside the model"


def test_this_image_marks_the_compare_pages_point(app):
    app.session_state["model"] = "tiny-hyper"
    app.run()
    app.selectbox(key="sample").set_value("Cat").run()  # the Compare page codes the cat
    point = app.session_state["operating_point"]
    assert point["image"] == "Cat" and point["size"] == "96x64"

    at = app.switch_page(RD_PAGE).run()
    assert not at.exception, at.exception
    assert at.radio(key="rd_scope").value == "This image"
    assert at.selectbox(key="rd_sample").value == "Cat"  # the Compare page's image comes first
    data = traces(at)
    names = {t["name"] for t in data}
    assert {"tiny-hyper", "tiny-seed", "JPEG", "WebP"} <= names and "Compare page's point" in names
    star = next(t for t in data if t["name"] == "Compare page's point")
    assert star["x"] == [pytest.approx(point["bpp"])] and star["y"] == [pytest.approx(point["psnr"])]
    hyper = next(t for t in data if t["name"] == "tiny-hyper")
    assert len(hyper["x"]) == 4 and "bytes" in hyper["hovertemplate"] and "quality" in hyper["hovertemplate"]

    codecs = at.multiselect(key="rd_codecs").value
    expected = expected_table(page_sweep({"Cat": crops()["Cat"]}, codecs), "jpeg",
                              {"tiny-hyper": "tiny-hyper", "tiny-seed": "tiny-seed", "webp": "WebP",
                               "avif": "AVIF", "jpeg2000": "JPEG 2000", "jxl": "JPEG XL", "heic": "HEIC"})
    assert shown_table(at) == expected
    assert shown_table(at)["tiny-hyper"] == ("no overlap", "no overlap")  # tiny models sit far below JPEG q5
    assert any("WebP" in m.value and "than JPEG for the same PSNR" in m.value for m in at.markdown)
    assert {b.key for b in at.download_button} >= {"rd_download_csv", "rd_download_html"}

    at.selectbox(key="rd_sample").set_value("Coffee").run()  # another image: no star
    assert not at.exception
    assert "Compare page's point" not in {t["name"] for t in traces(at)}
    assert any("pick that image here" in c.value for c in at.caption)

    at.switch_page("pages/compare.py").run()
    at.selectbox(key="sample").set_value("Astronaut").run()  # a new choice there is followed here
    at.switch_page(RD_PAGE).run()
    assert not at.exception and at.selectbox(key="rd_sample").value == "Astronaut"
    assert "Compare page's point" in {t["name"] for t in traces(at)}


def test_this_image_with_an_upload_and_fewer_codecs(app):
    at = open_page(app, RD_PAGE)
    at.multiselect(key="rd_codecs").set_value(["tiny-seed", "jpeg"]).run()
    picture = crops()["Astronaut"][:48, :80]
    at.file_uploader(key="rd_upload").set_value(("small.png", png_bytes(picture), "image/png")).run()
    assert not at.exception and not at.error
    assert {t["name"] for t in traces(at)} == {"tiny-seed", "JPEG"}
    assert any("small.png" in m.value and "80×48" in m.value for m in at.markdown)
    assert list(shown_table(at)) == ["tiny-seed"]

    at.file_uploader(key="rd_upload").set_value(("notes.png", b"not a picture", "image/png")).run()
    assert not at.exception and at.error and "notes.png" in at.error[0].value


def test_set_of_images_is_averaged_per_quality(app):
    at = open_page(app, RD_PAGE)
    at.radio(key="rd_scope").set_value("A set of images").run()
    at.multiselect(key="rd_codecs").set_value(["tiny-hyper", "jpeg", "webp"]).run()
    assert not at.exception, at.exception
    assert at.multiselect(key="rd_samples").value == ["Cat", "Astronaut", "Coffee"]
    assert any("3 images" in m.value for m in at.markdown)
    rows = page_sweep(crops(), ["tiny-hyper", "jpeg", "webp"])
    assert shown_table(at) == expected_table(rd.average(rows), "jpeg", {"webp": "WebP"})
    jpeg = next(t for t in traces(at) if t["name"] == "JPEG")
    means = [r["bpp"] for r in rd.average(rows) if r["codec"] == "jpeg"]
    assert jpeg["x"] == pytest.approx(means)
    assert "mean over" in jpeg["hovertemplate"]

    a, b = crops()["Cat"], crops()["Coffee"]
    at.file_uploader(key="rd_files").set_value([("a.png", png_bytes(a), "image/png"),
                                                ("b.png", png_bytes(b), "image/png"),
                                                ("c.png", b"nope", "image/png")]).run()
    assert not at.exception
    assert any("Left out" in w.value and "c.png" in w.value for w in at.warning)
    assert any("2 images" in m.value for m in at.markdown) and at.multiselect(key="rd_samples").disabled


def test_kodak_without_our_benchmark_shows_the_published_curves(app):
    at = open_page(app, RD_PAGE)
    at.radio(key="rd_scope").set_value("Kodak benchmark").run()
    assert not at.exception, at.exception
    assert any("has not been run" in i.value for i in at.info)
    data = traces(at)
    assert data and all(t["name"].endswith("(published)") for t in data)
    assert all(t["line"]["dash"] == "dash" for t in data)

    chosen = ["JPEG (PIL 7.1.2 / libjpeg)", "bmshj2018-hyperprior (CompressAI, mse)", "VVC VTM intra"]
    at.multiselect(key="rd_published").set_value(chosen).run()
    assert not at.exception
    assert {t["name"] for t in traces(at)} == {f"{c} (published)" for c in chosen}
    points = [p for p in anchors.load_published() if p["codec"] in chosen]
    expected = expected_table(points, anchors.PUBLISHED_JPEG, {c: f"{c} (published)" for c in chosen})
    assert shown_table(at) == expected
    assert float(expected["VVC VTM intra (published)"][0].rstrip("%")) < -50  # the state of the art classical
    assert any("CompressAI" in str(t.value) for t in at.table[1:])  # the sources are cited

    at.multiselect(key="rd_published").set_value(chosen + ["mbt2018-mean (paper/TFC)"]).run()
    assert not at.exception
    assert shown_table(at)["mbt2018-mean (paper/TFC) (published)"][1] == "not published"  # PSNR only


def test_kodak_with_our_benchmark_beside_the_published(app, tmp_path):
    rows = page_sweep({"kodim01": crops()["Cat"], "kodim02": crops()["Coffee"]}, ["jpeg", "webp", "tiny-hyper"])
    path = tmp_path / "results" / "kodak_rd.csv"
    path.parent.mkdir()
    rd.write_csv(rows, path)
    anchors.BENCHMARK_CSV = path  # the fixture's monkeypatch restores it
    at = open_page(app, RD_PAGE)
    at.radio(key="rd_scope").set_value("Kodak benchmark").run()
    assert not at.exception, at.exception
    assert not at.info and any("Kodak, 2 images" in m.value for m in at.markdown)
    data = traces(at)
    ours = [t for t in data if not t["name"].endswith("(published)")]
    assert {t["name"] for t in ours} == {"JPEG", "WebP", "tiny-hyper"}
    assert all(t["line"].get("dash") is None for t in ours)
    table = shown_table(at)
    expected = expected_table(rd.average(rows), "jpeg", {"webp": "WebP"})
    assert {k: table[k] for k in expected} == expected
    assert any(k.endswith("(published)") for k in table)


def test_inside_the_hyperprior(app):
    at = open_page(app, INSIDE_PAGE)
    assert not at.error
    labels = [m.label for m in at.metric]
    assert labels == ["Estimated from the model", "The real .aec file", "Spent on y"]
    est, real = (float(m.value.split()[0]) for m in at.metric[:2])
    assert est > 0 and real > 0
    assert len(at.get("plotly_chart")) == 2  # per-channel rates and the quantization profile
    assert len(at.get("image")) >= 5  # photo, heatmap, legend, y and z grids, quantization
    rates = traces(at, 0)
    assert [t["name"] for t in rates] == ["y (1/16)", "z (1/64)"]
    assert list(rates[0]["y"]) == sorted(rates[0]["y"], reverse=True)
    assert any("8×8 blocks" in c.value for c in at.caption)
    assert not at.tabs  # no pooling stages in the hyperprior

    at.slider(key="inside_quality").set_value(8.0).run()
    assert not at.exception and float(at.metric[0].value.split()[0]) >= est


def test_inside_the_seed_model_shows_its_pooling_stages(app):
    at = open_page(app, INSIDE_PAGE, model="tiny-seed")
    assert not at.exception and not at.error
    assert [t.label for t in at.tabs] == ["1/2 · 4 channels", "1/4 · 8 channels", "1/8 · 8 channels",
                                          "1/16 · 8 channels"]
    assert [t["name"] for t in traces(at, 0)] == ["y (1/16)"]
    at.checkbox(key="inside_normalize").uncheck().run()
    at.slider(key="inside_channels").set_value(4).run()
    assert not at.exception

    picture = crops()["Cat"][:40, :56]
    at.file_uploader(key="inside_upload").set_value(("tiny.png", png_bytes(picture), "image/png")).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="inside_sample").disabled


def test_inside_without_learned_weights_explains(app, user_weights):
    for f in user_weights.glob("*"):
        f.unlink()
    app.run()
    app.switch_page(INSIDE_PAGE).run()
    assert not app.exception
    assert any("No learned weights" in i.value for i in app.info)


def test_ssimulacra2_as_the_perceptual_metric(app):
    at = open_page(app, RD_PAGE)
    at.multiselect(key="rd_codecs").set_value(["jpeg", "webp"]).run()
    assert at.radio(key="rd_metric").value == "MS-SSIM"
    at.radio(key="rd_metric").set_value("SSIMULACRA 2").run()
    assert not at.exception, at.exception
    rows = rd.sweep({"Cat": crops()["Cat"]}, {c: [5, 10, 20, 30, 45, 60, 75, 90] for c in ("jpeg", "webp")})
    webp = [t for t in traces(at) if t["name"] == "WebP"]
    assert webp[1]["y"] == pytest.approx([r["ssimulacra2"] for r in rows if r["codec"] == "webp"])
    table = at.table[0].value
    expected = rd.bd_table(rows, "jpeg", "ssimulacra2")["webp"]
    assert table.loc["WebP", "For the same SSIMULACRA 2"] == f"{expected:+.1f}%"
    assert "For the same MS-SSIM" not in table.columns


def test_one_image_across_pages_until_cleared(app):
    at = open_page(app, "pages/compare.py")
    picture = crops()["Coffee"][:48, :72]
    at.file_uploader(key="upload").set_value(("mine.png", png_bytes(picture), "image/png")).run()
    assert not at.exception and at.session_state["current_image"]["name"] == "mine.png"

    for page in (INSIDE_PAGE, RD_PAGE):
        at.switch_page(page).run()
        assert not at.exception, at.exception
        assert any("mine.png" in c.value and "uploaded on another page" in c.value for c in at.caption)
    at.multiselect(key="rd_codecs").set_value(["jpeg", "webp"]).run()
    assert any("mine.png" in m.value and "72×48" in m.value for m in at.markdown)

    at.button(key="rd_clear_image").click().run()  # back to the samples, on every page
    assert not at.exception and at.session_state["current_image"]["kind"] == "sample"
    assert not any("mine.png" in m.value for m in at.markdown)
    at.selectbox(key="rd_sample").set_value("Astronaut").run()  # a sample picked here is Compare's too
    at.switch_page("pages/compare.py").run()
    assert not at.exception and at.selectbox(key="sample").value == "Astronaut"
    assert not any("mine.png" in m.value for m in at.markdown)
