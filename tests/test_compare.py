"""The comparison logic (aecore.compare) and the slider page (aecore.viewer), on tiny weights."""
import base64
import io
import math
import re

import numpy as np
import pytest
from PIL import Image

from aecore import compare as cmp, imaging
from aecore.codecs import get_codec
from aecore.metrics import STRUCTURAL
from aecore import viewer
from aecore.viewer import encode_image, slider_html


@pytest.fixture
def smooth(photo) -> np.ndarray:
    """The photo enlarged and blurred: JPEG's fixed overhead matters less, so sizes can match."""
    import cv2
    return cv2.GaussianBlur(cv2.resize(photo, (256, 192), interpolation=cv2.INTER_CUBIC), (0, 0), 2)


def test_same_size_gives_the_largest_jpeg_within_the_learned_stream(user_weights, smooth):
    result = cmp.compare(smooth, "tiny-seed", 8.0, mode=cmp.SAME_SIZE)
    learned, jpeg = result.learned, result.reference
    assert [r.codec for r in result.results] == ["tiny-seed", "jpeg"]
    assert result.budget == learned.num_bytes == len(learned.data)
    assert not jpeg.over_budget and not result.notes
    assert jpeg.num_bytes <= learned.num_bytes
    assert jpeg.quality == 100 or len(get_codec("jpeg").encode(smooth, jpeg.quality + 1)) > learned.num_bytes
    assert jpeg.data == get_codec("jpeg").encode(smooth, jpeg.quality)
    assert "At " + cmp.format_bytes(learned.num_bytes) in cmp.verdict(result)


def test_same_size_against_a_fixed_budget_is_tight():
    image = np.asarray(Image.fromarray(_gradient(96, 128)).resize((128, 96)))
    jpeg = get_codec("jpeg")
    budget = len(jpeg.encode(image, 50)) + 10
    result = cmp.matched(jpeg, image, budget)
    assert not result.over_budget and result.num_bytes <= budget
    assert result.quality == 100 or len(jpeg.encode(image, result.quality + 1)) > budget
    assert result.metrics["bytes"] == result.num_bytes
    assert result.decoded.shape == image.shape


def test_budget_below_jpeg_quality_1_is_reported(photo):
    jpeg = get_codec("jpeg")
    smallest = len(jpeg.encode(photo, 1))
    result = cmp.matched(jpeg, photo, smallest - 1)
    assert result.over_budget and result.quality == 1 and result.num_bytes == smallest
    assert "quality 1" in result.note and cmp.format_bytes(smallest) in result.note


def test_over_budget_reaches_the_comparison_notes_and_verdict(user_weights, photo):
    # A tiny model's stream of a small crop is far below JPEG's ~600 bytes of tables alone.
    result = cmp.compare(photo, "tiny-hyper", 1.0)
    assert result.reference.over_budget and result.reference.quality == 1
    assert result.reference.num_bytes > result.learned.num_bytes
    assert result.notes and "quality 1" in result.notes[0]
    assert "even at quality 1" in cmp.verdict(result)


def test_jpeg_quality_mode_and_extra_codec(user_weights, photo):
    result = cmp.compare(photo, "tiny-seed", 4.0, mode=cmp.JPEG_QUALITY, jpeg_quality=80, extra="webp")
    learned, jpeg, webp = result.results
    assert jpeg.codec == "jpeg" and jpeg.quality == 80 and not jpeg.over_budget
    assert jpeg.data == get_codec("jpeg").encode(photo, 80)
    assert webp.codec == "webp" and (webp.over_budget or webp.num_bytes <= learned.num_bytes)
    for r in result.results:
        assert r.decoded.shape == photo.shape and r.decoded.dtype == np.uint8
        assert r.encode_ms >= 0 and r.decode_ms >= 0
        assert set(cmp.BETTER) <= set(r.metrics)
    assert np.array_equal(get_codec("tiny-seed").decode(learned.data), learned.decoded)


def test_without_learned_weights_jpeg_stands_alone(photo):
    result = cmp.compare(photo, None, mode=cmp.SAME_SIZE, jpeg_quality=60, extra="webp")
    assert [r.codec for r in result.results] == ["jpeg", "webp"]
    assert result.mode == cmp.JPEG_QUALITY and result.budget == result.results[0].num_bytes
    assert "quality 60" in cmp.verdict(result)


def test_unknown_mode_is_refused(photo):
    with pytest.raises(ValueError, match="unknown mode"):
        cmp.compare(photo, None, mode="smallest")


def test_winner_follows_each_metrics_direction():
    a = _result("a", psnr=30.0, bpp=0.5, blockiness=1.02, encode_ms=5.0)
    b = _result("b", psnr=28.0, bpp=0.4, blockiness=1.9, encode_ms=5.0)
    assert cmp.winner([a, b], "psnr") == "a"
    assert cmp.winner([a, b], "bpp") == "b"
    assert cmp.winner([a, b], "blockiness") == "a"
    assert cmp.winner([a, b], "encode_ms") is None  # a tie has no winner
    c = _result("c", psnr=math.nan, bpp=0.6, blockiness=0.8, encode_ms=1.0)
    assert cmp.winner([a, c], "psnr") == "a"  # NaN never wins
    assert cmp.winner([c], "missing") is None


def test_verdict_states_the_numbers():
    learned = _result("hyper", kind="learned", psnr=31.2, ms_ssim=0.962, size=14_200)
    jpeg = _result("jpeg", psnr=28.1, ms_ssim=0.931, size=14_150)
    text = cmp.verdict([learned, jpeg])
    assert text == "At 14.2 KB, the autoencoder is +3.1 dB PSNR over JPEG (MS-SSIM 0.962 vs 0.931)."
    behind = cmp.verdict([_result("hyper", kind="learned", psnr=27.0, ms_ssim=0.9, size=9_000),
                          _result("jpeg", psnr=28.5, ms_ssim=0.93, size=20_000)])
    assert "1.5 dB PSNR behind JPEG" in behind and "55% smaller" in behind and "20.0 KB" in behind
    exact = cmp.verdict([_result("hyper", kind="learned", psnr=math.inf, ms_ssim=1.0, size=900),
                         _result("jpeg", psnr=40.0, ms_ssim=math.nan, size=890)])
    assert exact == "At 900 B, the autoencoder is lossless, ahead of JPEG."


def test_slider_html_is_self_contained_and_lossless(photo):
    rng = np.random.default_rng(1)
    other = rng.integers(0, 256, size=photo.shape, dtype=np.uint8)  # noise: any resampling would show
    page = slider_html({"Original": photo, "JPEG <q 5>": other}, left="Original", right="JPEG <q 5>", height=500)
    assert "http://" not in page and "https://" not in page
    assert 'id="aec-slider"' in page and 'class="aec-divider"' in page
    assert "JPEG &lt;q 5&gt;" in page  # labels are escaped
    uris = re.findall(r"data:image/webp;base64,([A-Za-z0-9+/=]+)", page)  # lossless WebP
    assert len(uris) == 2
    decoded = [np.asarray(Image.open(io.BytesIO(base64.b64decode(u)))) for u in uris]
    assert np.array_equal(decoded[0], photo) and np.array_equal(decoded[1], other)
    # an image encoded once beforehand (the page's original, step after step) is the same page
    assert slider_html({"Original": encode_image(photo), "JPEG <q 5>": other}, left="Original",
                       right="JPEG <q 5>", height=500) == page


def test_slider_images_are_exact_for_gray_and_past_webps_size_limit(monkeypatch):
    gray = np.random.default_rng(2).integers(0, 256, size=(40, 56), dtype=np.uint8)
    uri = viewer.image_data_uri(gray)
    assert uri.startswith("data:image/webp;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    assert all(np.array_equal(decoded[..., c], gray) for c in range(3))  # gray as equal RGB, exactly
    monkeypatch.setattr(viewer, "WEBP_MAX_SIDE", 50)  # wider than WebP allows: PNG, still exact
    uri = viewer.image_data_uri(gray)
    assert uri.startswith("data:image/png;base64,")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))), gray)


def test_slider_labels_that_look_like_placeholders_stay_labels(photo):
    page = slider_html({"__SIZE__": photo, "__CONFIG__": photo}, left="__SIZE__", right="__CONFIG__")
    assert '<div class="aec-label aec-label-left">__SIZE__</div>' in page
    assert '<div class="aec-label aec-label-right">__CONFIG__</div>' in page
    assert "__STYLE__" not in page and "__SCRIPT__" not in page
    assert "function render()" in page and ".aec-stage {" in page  # script and styles inlined


def test_slider_html_refuses_bad_input(photo):
    with pytest.raises(ValueError, match="not among"):
        slider_html({"a": photo}, left="a", right="b")
    with pytest.raises(ValueError, match="one size"):
        slider_html({"a": photo, "b": photo[:10]}, left="a", right="b")


def _gradient(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.dstack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256]).astype(np.uint8)


def _result(codec: str, kind: str = "classical", size: int = 1000, **metrics) -> cmp.CodecResult:
    full = {"bytes": size, "ms_ssim": 0.9, **metrics}
    return cmp.CodecResult(codec=codec, label="JPEG" if codec == "jpeg" else codec, kind=kind, quality=50,
                           data=bytes(size), decoded=np.zeros((1, 1, 3), np.uint8), metrics=full,
                           encode_ms=metrics.get("encode_ms", 1.0), decode_ms=1.0)


def test_the_downloaded_stream_decodes_to_the_pixels_shown(user_weights, photo):
    """The page offers `data` for download and shows `decoded`: the command line's decoder agrees."""
    from aecore.codecs.learned import decode_any
    learned = cmp.compare(photo, "tiny-hyper", 5.0).learned
    assert np.array_equal(decode_any(learned.data), learned.decoded)


def test_ssimulacra2_is_scored_on_a_copy_only_above_the_cap(photo, monkeypatch):
    from aecore.metrics import ssimulacra2
    jpeg = get_codec("jpeg")
    full = cmp.code(jpeg, photo, 40)
    assert full.metrics["ssimulacra2"] == ssimulacra2(photo, full.decoded)
    monkeypatch.setattr(cmp, "SSIMULACRA2_PIXELS", 3000)
    small = cmp.code(jpeg, photo, 40)
    shrink = lambda x: imaging.shrink_to_pixels(x, 3000)  # noqa: E731
    assert small.metrics["ssimulacra2"] == ssimulacra2(shrink(photo), shrink(small.decoded))
    assert small.metrics["psnr"] == full.metrics["psnr"]  # every other number stays full size


def test_verdict_names_a_third_codec_that_wins():
    learned = _result("hyper", kind="learned", psnr=31.0, ms_ssim=0.96, size=134_900)
    jpeg = _result("jpeg", psnr=28.9, ms_ssim=0.93, size=134_700)
    j2k = _result("jpeg2000", psnr=31.8, ms_ssim=0.97, size=134_800)
    j2k.label = "JPEG 2000"
    assert cmp.verdict([learned, jpeg, j2k]) == ("At 134.9 KB, the autoencoder is +2.1 dB PSNR over JPEG "
                                                 "(MS-SSIM 0.960 vs 0.930); 0.8 dB behind JPEG 2000 at 134.8 KB.")
    webp = _result("webp", psnr=30.0, size=134_000)
    webp.label = "WebP"
    assert cmp.verdict([learned, jpeg, webp]).endswith("; +1.0 dB over WebP at 134.0 KB.")
    level = _result("avif", psnr=31.02, size=134_000)
    assert cmp.verdict([learned, jpeg, level]).endswith("; level with avif at 134.0 KB.")


def test_verdict_between_two_classical_codecs_and_one_alone():
    webp = _result("webp", psnr=30.0, ms_ssim=0.95, size=10_000)
    jxl = _result("jxl", psnr=31.5, ms_ssim=0.96, size=10_050)
    webp.label, jxl.label = "WebP", "JPEG XL"
    assert cmp.verdict([webp, jxl]) == ("At 10.0 KB, WebP quality 50 is 1.5 dB PSNR behind JPEG XL "
                                        "(MS-SSIM 0.950 vs 0.960).")
    assert cmp.verdict([jxl]) == "JPEG XL at quality 50: 10.1 KB, 31.5 dB PSNR, MS-SSIM 0.960."
    assert cmp.verdict([]) == "Nothing was coded."


def test_each_side_its_own_codec_and_setting(smooth):
    left, right = cmp.Side("webp", cmp.QUALITY, 60), cmp.Side("jxl", cmp.SAME_AS_OTHER)
    comp = cmp.compare_sides(smooth, left, right)
    webp, jxl = comp.left, comp.right
    assert (webp.codec, webp.quality) == ("webp", 60) and webp.data == get_codec("webp").encode(smooth, 60)
    assert jxl.codec == "jxl" and comp.results == [webp, jxl] and comp.budget == webp.num_bytes
    assert jxl.num_bytes <= webp.num_bytes  # the largest JPEG XL file that fits
    assert jxl.quality == 100 or len(get_codec("jxl").encode(smooth, jxl.quality + 1)) > webp.num_bytes
    # either side may be the one that is matched, and the set-up order does not matter
    swapped = cmp.compare_sides(smooth, cmp.Side("jxl", cmp.SAME_AS_OTHER), cmp.Side("webp", cmp.QUALITY, 60))
    assert swapped.left.data == jxl.data and swapped.right.data == webp.data


def test_target_size_original_and_a_third_column(smooth):
    comp = cmp.compare_sides(smooth, cmp.Side(cmp.ORIGINAL), cmp.Side("heic", cmp.TARGET_SIZE, target_kb=2.5),
                             extra=cmp.Side("jpeg", cmp.SAME_AS_OTHER))
    assert comp.left is None and comp.right.codec == "heic"
    assert comp.right.num_bytes <= 2500 or comp.right.over_budget
    assert len(get_codec("heic").encode(smooth, comp.right.quality + 1)) > 2500
    jpeg = comp.results[1]
    assert [r.codec for r in comp.results] == ["heic", "jpeg"] and comp.mode == cmp.SAME_SIZE
    assert jpeg.num_bytes <= comp.right.num_bytes or jpeg.over_budget  # matched to the coded side


def test_sides_that_cannot_be_set_say_why(photo):
    with pytest.raises(ValueError, match="needs the other side to be coded"):
        cmp.compare_sides(photo, cmp.Side("jpeg", cmp.SAME_AS_OTHER), cmp.Side("webp", cmp.SAME_AS_OTHER))
    with pytest.raises(ValueError, match="needs the other side to be coded"):
        cmp.compare_sides(photo, cmp.Side(cmp.ORIGINAL), cmp.Side("webp", cmp.SAME_AS_OTHER))
    with pytest.raises(ValueError, match="positive number of KB"):
        cmp.compare_sides(photo, cmp.Side("jpeg", cmp.TARGET_SIZE, target_kb=0), cmp.Side(cmp.ORIGINAL))
    with pytest.raises(ValueError, match="unknown setting"):
        cmp.compare_sides(photo, cmp.Side("jpeg", "best"), cmp.Side(cmp.ORIGINAL))


def test_the_default_comparison_is_learned_left_and_jpeg_right_at_its_size(user_weights, smooth):
    comp = cmp.compare(smooth, "tiny-seed", 8.0)
    assert comp.left is comp.learned and comp.right is comp.reference
    sides = cmp.compare_sides(smooth, cmp.Side("tiny-seed", cmp.QUALITY, 8.0), cmp.Side("jpeg", cmp.SAME_AS_OTHER))
    assert sides.right.data == comp.right.data and sides.budget == comp.budget


def test_coding_times_exclude_waiting_for_another_sessions_coding(user_weights, photo, monkeypatch):
    """Sessions share one coding lock: a figure must not include the time spent queued behind
    another session. The clock jumps 1000 s while another thread holds the codec; the timed
    encode and decode start only after it lets go, so the jump never reaches them."""
    import threading
    import time as real_time
    codec = get_codec("tiny-hyper")
    offset, clock = [0.0], real_time.perf_counter
    monkeypatch.setattr(real_time, "perf_counter", lambda: clock() + offset[0])
    started, result = threading.Event(), {}

    def session():
        started.set()
        result["r"] = cmp.code(codec, photo, 4.0)

    with codec.exclusive():
        worker = threading.Thread(target=session)
        worker.start()
        started.wait()
        real_time.sleep(0.2)  # the other session is now queued on the lock
        offset[0] = 1000.0
    worker.join()
    r = result["r"]
    assert r.encode_ms < 1000 * 1000 and r.decode_ms < 1000 * 1000


def test_slider_offers_the_3_up_view_only_with_an_original(photo):
    images = {"Original": photo, "A": photo[::-1].copy(), "B": photo[:, ::-1].copy()}
    with_original = slider_html(images, left="A", right="B", original="Original")
    assert '"original": "Original"' in with_original and 'class="aec-three"' in with_original
    assert '"original": null' in slider_html(images, left="A", right="B")
    with pytest.raises(ValueError, match="original image 'Nope' is not among the images"):
        slider_html(images, left="A", right="B", original="Nope")


def test_perceptual_scores_can_come_after_the_coding(photo):
    """The page codes without SSIMULACRA 2 (seconds of CPU) and scores it once the slider shows:
    the scores filled in then are those of a comparison scored at once, and nothing else moves."""
    sides = (cmp.Side("jpeg", cmp.QUALITY, 30), cmp.Side("webp", cmp.SAME_AS_OTHER))
    now = cmp.compare_sides(photo, *sides)
    later = cmp.compare_sides(photo, *sides, perceptual=False)
    assert all(math.isnan(r.metrics["ssimulacra2"]) for r in later.results)
    assert cmp.score_perceptual(later) == [r.metrics["ssimulacra2"] for r in now.results]
    assert [r.metrics["ssimulacra2"] for r in later.results] == cmp.score_perceptual(now)
    assert [r.metrics["psnr"] for r in later.results] == [r.metrics["psnr"] for r in now.results]


def test_structural_scores_can_come_after_the_slider(user_weights, photo):
    """The page shows the slider with PSNR alone and fills SSIM and MS-SSIM in after: the values
    filled in are those of a comparison scored at once, for a learned and a matched classical side,
    and a classical result kept in a ResultCache is returned scored once it has been."""
    sides = (cmp.Side("tiny-hyper", cmp.QUALITY, 3.0), cmp.Side("jpeg", cmp.SAME_AS_OTHER))
    now = cmp.compare_sides(photo, *sides, perceptual=False)
    cache = cmp.ResultCache()
    later = cmp.compare_sides(photo, *sides, perceptual=False, structural=False, cache=cache)
    assert all(math.isnan(r.metrics[k]) for r in later.results for k in STRUCTURAL)
    assert [r.metrics["psnr"] for r in later.results] == [r.metrics["psnr"] for r in now.results]
    untimed = lambda m: {k: v for k, v in m.items() if not k.endswith("_ms") and k != "ssimulacra2"}  # noqa: E731
    filled = [untimed(cmp.fill_scores(later, i, perceptual=False)) for i in range(len(later.results))]
    assert filled == [untimed(r.metrics) for r in now.results] == [untimed(r.metrics) for r in later.results]
    again = cmp.compare_sides(photo, *sides, perceptual=False, cache=cache)
    assert again.reference.metrics["ms_ssim"] == now.reference.metrics["ms_ssim"]


class Counting:
    """A real classical codec whose encodes are counted (everything else is the codec's own)."""

    def __init__(self, name: str):
        self.codec, self.encodes = get_codec(name), []

    def __getattr__(self, name):
        return getattr(self.codec, name)

    def encode(self, image, quality):
        self.encodes.append(quality)
        return self.codec.encode(image, quality)


def test_kept_classical_results_are_not_encoded_again(smooth):
    """A slider moved back to a quality already seen, the sides swapped, or the same size matched
    again encode nothing; the results are those of an uncached comparison, and a caller's note or
    SSIMULACRA 2 on one result never reaches another comparison's copy."""
    counted = {n: Counting(n) for n in ("jpeg", "webp")}
    resolve = counted.__getitem__
    cache = cmp.ResultCache()
    jpeg_at = lambda q: cmp.Side("jpeg", cmp.QUALITY, q)  # noqa: E731
    webp_matched = cmp.Side("webp", cmp.SAME_AS_OTHER)

    def encodes(*sides):
        before = {n: len(c.encodes) for n, c in counted.items()}
        comp = cmp.compare_sides(smooth, *sides, codecs=resolve, perceptual=False, cache=cache)
        return comp, {n: len(c.encodes) - before[n] for n, c in counted.items()}

    first, n = encodes(jpeg_at(50), webp_matched)
    assert n["jpeg"] == 1 and n["webp"] >= 3  # one timed encode each, after the size search's
    _, n = encodes(jpeg_at(70), webp_matched)
    assert n["jpeg"] == 1 and n["webp"] >= 1
    again, n = encodes(jpeg_at(50), webp_matched)  # back to a quality already seen
    assert n == {"jpeg": 0, "webp": 0}
    swapped, n = encodes(webp_matched, jpeg_at(50))  # the sides swapped
    assert n == {"jpeg": 0, "webp": 0}
    fresh = cmp.compare_sides(smooth, jpeg_at(50), webp_matched, perceptual=False)
    for got in (again, swapped):
        for r, want in zip(sorted(got.results, key=lambda r: r.codec), fresh.results):
            assert (r.codec, r.quality, r.data, r.note) == (want.codec, want.quality, want.data, want.note)
            assert np.array_equal(r.decoded, want.decoded)
            assert {k: v for k, v in r.metrics.items() if not k.endswith("_ms")} == \
                pytest.approx({k: v for k, v in want.metrics.items() if not k.endswith("_ms")}, nan_ok=True)
    cmp.score_perceptual(again)
    again.results[0].note = "changed by one caller"
    later, _ = encodes(jpeg_at(50), webp_matched)
    assert later.results[0].note == "fixed quality 50" and math.isnan(later.results[0].metrics["ssimulacra2"])
    other = smooth[::-1].copy()  # another image is another key
    assert cmp.compare_sides(other, jpeg_at(50), webp_matched, codecs=resolve, cache=cache).results[0].data == \
        get_codec("jpeg").encode(other, 50)
    # bounded: the least recently used results go once the pixels held pass max_bytes
    small = cmp.ResultCache(max_bytes=3 * smooth.nbytes)
    for q in (10, 20, 30, 40):
        cmp.compare_sides(smooth, jpeg_at(q), cmp.Side(cmp.ORIGINAL), codecs=resolve, cache=small)
    assert small.held_bytes() <= small.max_bytes
    before = len(counted["jpeg"].encodes)
    cmp.compare_sides(smooth, jpeg_at(40), cmp.Side(cmp.ORIGINAL), codecs=resolve, cache=small)
    cmp.compare_sides(smooth, jpeg_at(10), cmp.Side(cmp.ORIGINAL), codecs=resolve, cache=small)
    assert counted["jpeg"].encodes[before:] == [10]  # 40 was kept, 10 was dropped


@pytest.mark.parametrize("name", ["tiny-hyper", "tiny-seed"])
def test_a_new_learned_quality_codes_from_the_kept_analysis(user_weights, photo, name):
    """The analysis transform's output is kept per image and weights, and a quality slider step
    codes from it: the streams are byte for byte those of plain encodes, and the encode time
    reported is a whole encode's (the kept analysis's own time included)."""
    codec = get_codec(name)
    cache = cmp.ResultCache()
    learned_at = lambda q: cmp.Side(name, cmp.QUALITY, q)  # noqa: E731
    for q in (2.0, 8.0):
        comp = cmp.compare_sides(photo, learned_at(q), cmp.Side("jpeg", cmp.SAME_AS_OTHER), perceptual=False,
                                 cache=cache)
        assert comp.learned.data == codec.encode(photo, q)
        assert np.array_equal(comp.learned.decoded, codec.decode(comp.learned.data))
    kept = cache.analysis(photo, codec)
    assert set(kept) == {"analysis", "seconds"} and len(cache._analyses) == 1
    assert comp.learned.encode_ms >= kept["seconds"] * 1000
    other = photo[::-1].copy()  # another image is another entry, with its own bytes
    again = cmp.compare_sides(other, learned_at(8.0), cmp.Side(cmp.ORIGINAL), cache=cache, perceptual=False)
    assert again.learned.data == codec.encode(other, 8.0) and len(cache._analyses) == 2
    assert cache.held_bytes() >= 2 * kept["analysis"].nbytes
    small = cmp.ResultCache(max_bytes=kept["analysis"].nbytes)  # room for one: the older one goes
    for image in (photo, other, photo):
        cmp.compare_sides(image, learned_at(3.0), cmp.Side(cmp.ORIGINAL), cache=small, perceptual=False)
    assert len(small._analyses) == 1 and small.held_bytes() <= small.max_bytes


def test_live_slider_parts_are_the_pages_markup_styles_and_script_without_placeholders(photo):
    """The app's live slider is the page's slider: its markup, styles and script, every placeholder
    gone, and a module whose default export feeds each `slider_config` to the same script."""
    markup, styles, script = viewer.live_slider_parts()
    assert markup.startswith('<div id="aec-slider"') and 'class="aec-divider"' in markup
    for part in (markup, styles, script):
        assert not re.search(r"__[A-Z_]+__", part), part[:200]
    assert ".aec-stage {" in styles and "function aecSlider(root)" in script
    assert re.search(r"export default function \(\{data, parentElement\}\)", script)
    page = slider_html({"Original": photo}, left="Original", right="Original")
    assert "function aecSlider(root)" in page and markup.split(">", 1)[0] in page  # one script, one markup
    config = viewer.slider_config({"b": photo, "a": photo, "1": photo}, left="a", right="1", height=400)
    assert config["names"] == ["b", "a", "1"]  # the callers' order, which a JSON object of names may not keep
    assert (config["left"], config["right"], config["frame"], config["width"]) == ("a", "1", 400, photo.shape[1])
