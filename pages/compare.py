"""Compare: the learned codec beside JPEG at the same file size, pixel by pixel.

A thin shell: `aecore.compare` does the coding and measuring, `aecore.viewer` draws the
before/after slider; this page reads the widgets, caches results and lays them out.
Widget keys (tests set them): upload (several files), upload_pick (which one is shown), sample, full_size; per side (left_, right_): codec,
setting, quality_<codec>, kb, effort (learned sides); cancel_refinement, extra_codec, download_aec, download_png,
download_jpeg, download_extra, download_figure, download_report, download_zip. Session key
effort_presets ({effort: refine.Schedule}) replaces the refinement presets (tests: a few iterations).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import streamlit as st

from aecore import background, batch, compare as cmp, imaging, refine, report, weights
from aecore.codecs import EFFORTS, classical_names, learned_names
from aecore.io import ImageError, load_image, to_png_bytes
from aecore.viewer import TOOLBAR_PX, EncodedImage, encode_image, slider_config
from pages import shared

SLIDER_MAX_SIDE = 1600    # the slider's pictures travel to the browser; 1600 px fills a wide screen
HEATMAP_MAX_SIDE = 1000   # heatmaps are shown a third of the page wide at most
SLIDER_WIDTH_GUESS = 980  # the slider's stage width in a wide layout on a 1440 px screen
MIN_STAGE, MAX_STAGE = 340, 680  # the picture area's height range, in CSS pixels
SETTINGS = {"Quality": cmp.QUALITY, "Same size as the other side": cmp.SAME_AS_OTHER,
            "Target size": cmp.TARGET_SIZE}
NO_EXTRA = "none"
SCORED_RUNS_KEY = "compare_scored_runs"  # this session's comparisons whose SSIMULACRA 2 is cached
WIN_STYLE = "background-color: rgba(33, 195, 84, 0.16); font-weight: 700; color: #177233"


@st.cache_data(max_entries=16, show_spinner=False)
def run_comparison(image_key: str, _image, left: cmp.Side, right: cmp.Side, extra: cmp.Side | None,
                   stamps: str, _starts: dict | None = None, _kept: cmp.ResultCache | None = None) -> cmp.Comparison:
    """One comparison, keyed by the image's hash, the sides and the learned weights' stamps (not the pixels).
    SSIM, MS-SSIM and SSIMULACRA 2 are left unscored: `scores` fills them in once the slider is on the page.
    `_starts` (this session's last matched qualities) and `_kept` (this session's classical results)
    only save work, so they are not part of the key."""
    return cmp.compare_sides(_image, left, right, extra, codecs=shared.codec, perceptual=False, starts=_starts,
                             cache=_kept, structural=False)


@st.cache_data(max_entries=96, show_spinner=False)
def scores(run_key: str, index: int, perceptual: bool, _comparison: cmp.Comparison) -> dict:
    """One result's metrics with SSIM and MS-SSIM filled in (about 0.1 s at 768x512) and, if
    `perceptual`, SSIMULACRA 2 (about 0.7 s): after the slider, cached per comparison. One at a time:
    a run superseded by a new one (the slider moved again) keeps running until its next Streamlit
    call, so it stops after the score in hand instead of all of them."""
    return cmp.fill_scores(_comparison, index, perceptual)


@st.cache_data(max_entries=16, show_spinner=False)
def build_heatmaps(run_key: str, _comparison: cmp.Comparison) -> dict:
    """The error heatmaps on one colour scale, made after the slider is shown."""
    comp = _comparison
    vmax = imaging.error_scale(comp.original, [r.decoded for r in comp.results])
    return {"heatmaps": [imaging.preview(imaging.error_map(comp.original, r.decoded, vmax), HEATMAP_MAX_SIDE)
                         for r in comp.results],
            "vmax": vmax, "legend": imaging.error_legend(360, 14)}


@st.cache_data(max_entries=16, show_spinner=False)
def original_view(image_key: str, _image) -> EncodedImage:
    """The slider's original, encoded once per image (keyed by its content): it is the same in every step."""
    return encode_image(imaging.preview(_image, SLIDER_MAX_SIDE))


@st.cache_data(max_entries=16, show_spinner=False)
def build_views(run_key: str, _comparison: cmp.Comparison, height: int, image_key: str) -> dict:
    """What the page shows first of a comparison: the slider's pictures and sides."""
    comp = _comparison
    images = {"Original": original_view(image_key, comp.original)}
    names = {}
    for r in comp.results:
        name = r.display_name
        while name in images:  # the same codec and setting on both sides
            name += " "
        names[id(r)] = name
        images[name] = imaging.preview(r.decoded, SLIDER_MAX_SIDE)
    first = names[id(comp.left)] if comp.left is not None else "Original"
    second = names[id(comp.right)] if comp.right is not None else "Original"
    return {
        "slider": slider_config(images, left=first, right=second, height=height, original="Original"),
        "preview_shape": images["Original"].shape[:2],
    }


def describe(pixels, name: str) -> str:
    h, w = pixels.shape[:2]
    colour = "grayscale" if pixels.ndim == 2 else "RGB"
    return f"**{shared.md_escape(name)}** · {w}×{h} px · {w * h / 1e6:.2f} MP · {colour}"


def side_controls(where: str, default_codec: str, default_setting: str) -> cmp.Side:
    """One side's codec and how its quality is set (remembered for the session)."""
    options = learned_names() + classical_names() + [cmp.ORIGINAL]
    if st.session_state.get(f"{where}_codec") not in options:
        st.session_state[f"{where}_codec"] = default_codec if default_codec in options else cmp.REFERENCE
    name = lambda n: "Original (uncoded)" if n == cmp.ORIGINAL else shared.codec(n).label or n  # noqa: E731
    codec = st.selectbox(
        f"{where.title()} side", options, key=f"{where}_codec", persist_state="session", format_func=name,
        # the box cuts a long name to the column's width: its tooltip gives the whole of it
        help=f"**{shared.md_escape(name(st.session_state[f'{where}_codec']))}**. "
             "Any learned model, any classical codec, or the original image.")
    if codec == cmp.ORIGINAL:
        return cmp.Side(cmp.ORIGINAL)
    if st.session_state.get(f"{where}_setting") not in SETTINGS:
        st.session_state[f"{where}_setting"] = next(k for k, v in SETTINGS.items() if v == default_setting)
    setting = SETTINGS[st.radio(
        "Set by", list(SETTINGS), key=f"{where}_setting", horizontal=True, persist_state="session",
        help="Quality: a fixed setting, whatever the size. Same size: the best quality whose file is not "
             "larger than the other side's. Target size: the best quality within a size you choose.")]
    c = shared.codec(codec)
    if setting == cmp.QUALITY:
        lo, hi = (float(v) for v in c.quality_range)
        # The left learned side keeps the page's one learned-quality key: the scale is shared by every model.
        key = "quality" if where == "left" and c.kind == "learned" else f"{where}_quality_{codec}"
        current = st.session_state.get(key)
        if not isinstance(current, (int, float)) or not lo <= current <= hi:
            st.session_state[key] = float(round(c.default_quality, 1)) if c.continuous else int(c.default_quality)
        step = 0.1 if c.continuous else 1
        quality = st.slider(f"{c.label} quality", lo if c.continuous else int(lo), hi if c.continuous else int(hi),
                            step=step, format="%.1f" if c.continuous else "%d", key=key, persist_state="session",
                            help="Higher spends more bytes for a better picture.")
        return cmp.Side(codec, cmp.QUALITY, float(quality))
    if setting == cmp.TARGET_SIZE:
        kb = st.number_input("Target size (KB)", min_value=0.1, value=20.0, step=1.0, key=f"{where}_kb",
                             persist_state="session", help="1 KB = 1000 bytes; the largest file within it.")
        return cmp.Side(codec, cmp.TARGET_SIZE, target_kb=float(kb))
    return cmp.Side(codec, cmp.SAME_AS_OTHER)


def controls(model: str | None) -> dict:
    """Both sides' settings and the third column. The default: the learned model on the left at its
    quality, JPEG on the right at the same size (JPEG alone, beside the original, without weights)."""
    if st.session_state.get("compare_model", model) != model:  # a new model in the sidebar: the left side follows
        if st.session_state.get("left_codec") == st.session_state.get("compare_model"):
            st.session_state["left_codec"] = model
    st.session_state["compare_model"] = model
    left_col, right_col = st.columns(2)
    with left_col:
        left = side_controls("left", model or cmp.REFERENCE, cmp.QUALITY)
    with right_col:
        right = side_controls("right", cmp.REFERENCE if model else cmp.ORIGINAL, cmp.SAME_AS_OTHER)
    extras = [NO_EXTRA] + [n for n in classical_names() if n != cmp.REFERENCE]
    extra = st.selectbox(
        "Third codec", extras, key="extra_codec", persist_state="session",
        format_func=lambda n: "None" if n == NO_EXTRA else shared.codec(n).label,
        help="Another classical codec in the numbers and heatmaps, matched to the left side's size.")
    return {"left": left, "right": right, "extra": None if extra == NO_EXTRA else cmp.Side(extra, cmp.SAME_AS_OTHER)}


# A refined encode runs in this session's background task (aecore.background) so that the page
# can show its progress and a Cancel button; its comparisons are kept here, a few at a time.
REFINE_TASK, REFINED, CANCELLED = "compare_refine_task", "compare_refined", "compare_refine_cancelled"
PRESETS_KEY = "effort_presets"  # {effort: refine.Schedule} replacing refine.PRESETS (tests: a few iterations)
# A large photo's full-size comparison: coded on this session's background thread while the page
# shows its copy's result (the task), then kept for its run key (the last one only: a 12 MP
# comparison holds its original and every decoded image).
FULL_TASK, FULL_DONE = "compare_full_task", "compare_full_done"
FULL_POLL_SECONDS = 1.0


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def effort_controls(settings: dict, shape) -> dict:
    """Each learned side's encode effort, labelled with the time it should take for this image."""
    presets = st.session_state.get(PRESETS_KEY)
    h, w = shape[:2]
    for where in ("left", "right"):
        side = settings[where]
        if side.codec == cmp.ORIGINAL or shared.codec(side.codec).kind != "learned":
            continue
        model = shared.codec(side.codec).model
        times = {e: refine.expected_seconds(model, e, h, w, presets) for e in EFFORTS}
        if st.session_state.get(f"{where}_effort") not in EFFORTS:
            st.session_state[f"{where}_effort"] = "fast"
        effort = st.radio(
            f"Encode effort ({where} side)", EFFORTS, key=f"{where}_effort", horizontal=True,
            format_func=lambda e, times=times: e if e == "fast" else f"{e} (about {_duration(times[e])})",
            help="Balanced and best refine the latents for this image before coding them: a smaller file at the "
                 "same quality, the same decoder. The times are for this image on 2 free cores; a size search "
                 "may refine twice.")
        settings[where] = dataclasses.replace(side, effort=effort)
    return settings


def cancel_refinement() -> None:
    """The Cancel button: stops the refinement and goes back to the fast encoder."""
    task = st.session_state.get(REFINE_TASK)
    if task is not None:
        task.cancel()
    for where in ("left", "right"):
        if st.session_state.get(f"{where}_effort", "fast") != "fast":
            st.session_state[f"{where}_effort"] = "fast"
    st.session_state[CANCELLED] = True


def refined_comparison(run_key: str, image, sides) -> cmp.Comparison | None:
    """The comparison with refined sides, coded in this session's background task while a progress
    bar and a Cancel button show; None once cancelled. A rerun finds the running task again."""
    kept = st.session_state.setdefault(REFINED, {})
    if run_key in kept:
        return kept[run_key]
    task = st.session_state.get(REFINE_TASK)
    if task is None or task.key != run_key or task.cancelled:
        if task is not None:
            task.cancel()
        resolved = resolved_sides(sides)
        presets = st.session_state.get(PRESETS_KEY)
        task = background.Task(run_key, lambda progress, cancel: cmp.compare_sides(
            image, *resolved, perceptual=False, refining={"presets": presets, "progress": progress, "cancel": cancel}))
        st.session_state[REFINE_TASK] = task
    h, w = image.shape[:2]
    expected = sum(refine.expected_seconds(shared.codec(s.codec).model, s.effort, h, w,
                                           st.session_state.get(PRESETS_KEY))
                   for s in sides if s is not None and s.effort != "fast")

    def text() -> str:
        done = f"{task.done}/{task.total} iterations, " if task.total else ""
        return f"Refining the latents: {done}{task.seconds:.0f} s of about {_duration(expected)} on 2 free cores"

    bar = st.progress(task.fraction, text=text())
    st.button("Cancel", key="cancel_refinement", on_click=cancel_refinement, icon=":material/cancel:",
              help="Stop refining and show the fast encoder's result.")
    while not task.finished.wait(0.25):
        bar.progress(task.fraction, text=text())
    st.session_state.pop(REFINE_TASK, None)
    if isinstance(task.error, refine.Cancelled):
        return None
    if task.error is not None:
        raise task.error
    kept[run_key] = task.result
    while len(kept) > 4:
        kept.pop(next(iter(kept)))
    st.rerun()  # the result replaces the progress bar and the button


def resolved_sides(sides) -> list:
    """The sides with learned codecs resolved here, on the page's thread (its cached loader), for
    a background task to code with; never modified."""
    return [s if s is None or s.codec not in learned_names() else dataclasses.replace(s, codec=shared.codec(s.codec))
            for s in sides]


def full_size_result(run_key: str) -> cmp.Comparison | None:
    """A large photo's full-size comparison for these settings, once its background task is over."""
    done = st.session_state.setdefault(FULL_DONE, {})
    task = st.session_state.get(FULL_TASK)
    if task is not None and task.finished.is_set():
        st.session_state.pop(FULL_TASK)
        if task.key == run_key and task.error is not None:
            raise task.error
        if task.key == run_key:
            done.clear()
            done[run_key] = task.result
    return done.get(run_key)


def full_size_task(run_key: str, image, sides) -> background.Task:
    """The background task coding a large photo in full while the page shows its copy's result.
    One at a time per session: coding cannot stop mid-file, so a task for settings changed since
    runs to its end before the next one starts, and only one full-size comparison is being made."""
    task = st.session_state.get(FULL_TASK)
    if task is None:
        resolved = resolved_sides(sides)
        task = background.Task(run_key, lambda progress, cancel: cmp.compare_sides(
            image, *resolved, codecs=shared.codec, perceptual=False, structural=False))
        st.session_state[FULL_TASK] = task
    return task


def full_size_progress(task: background.Task, shape, copy_shape) -> None:
    """The preview's label, polled (a fragment): the whole page reruns once the task is over."""
    if task.finished.is_set():
        st.rerun()
    (h, w), (ch, cw) = shape[:2], copy_shape[:2]
    st.info(f"**Preview**: coded from a {cw}×{ch} copy ({ch * cw / 1e6:.1f} MP), and its numbers are that "
            f"copy's. The full {w}×{h} image is being coded in the background ({task.seconds:.0f} s so far); its "
            "result replaces this one, with every score, the downloads and the heatmaps.",
            icon=":material/hourglass_top:")


def slider_height(shape) -> int:
    """A component height that fits the picture as the slider will show it at "fit".

    Mirrors the slider's fit rule (scaled down to fit, or enlarged by a whole factor)
    for a stage about SLIDER_WIDTH_GUESS wide and at most MAX_STAGE tall.
    """
    h, w = shape[:2]
    scale = min(SLIDER_WIDTH_GUESS / w, MAX_STAGE / h)
    if scale >= 1:
        scale = min(math.floor(scale), 8)
    return int(min(MAX_STAGE, max(MIN_STAGE, h * scale + 16)) + TOOLBAR_PX)


def headline(comp: cmp.Comparison) -> None:
    learned, ref = comp.learned, comp.reference
    st.markdown(f"#### {cmp.verdict(comp)}")
    for note in comp.notes:
        st.warning(note, icon=":material/warning:")
    if learned is None or ref is None:
        return
    a, b, c, d = st.columns(4)
    size_change = (learned.num_bytes - ref.num_bytes) / ref.num_bytes * 100
    same = abs(size_change) < 2  # a matched JPEG is a few bytes under the budget: "the same size"
    a.metric(f"{learned.label} file", cmp.format_bytes(learned.num_bytes),
             delta=f"JPEG {cmp.format_bytes(ref.num_bytes)}" if same else f"{size_change:+.0f}% vs JPEG",
             delta_color="off" if same else "inverse", delta_arrow="off" if same else "auto",
             help=f"{learned.metrics['bpp']:.3f} bits per pixel, every byte of the file counted. "
                  f"JPEG: {cmp.format_bytes(ref.num_bytes)}.")
    gain = learned.metrics["psnr"] - ref.metrics["psnr"]
    b.metric("PSNR", _fmt_db(learned.metrics["psnr"]),
             delta=None if not math.isfinite(gain) else f"{gain:+.2f} dB vs JPEG",
             help="Peak signal-to-noise ratio on RGB, peak 255. +1 dB is about 20% less squared error.")
    ms_gain = learned.metrics["ms_ssim"] - ref.metrics["ms_ssim"]
    c.metric("MS-SSIM", _cell("ms_ssim", learned.metrics["ms_ssim"]),
             delta=None if math.isnan(ms_gain) else f"{ms_gain:+.4f} vs JPEG",
             help="Multi-scale structural similarity (1 = identical), closer to what people notice than PSNR.")
    how = "matched to the size" if ref.note.startswith("quality") else (
        "its lowest" if ref.over_budget else "fixed")
    d.metric("JPEG quality", ref.quality_text, delta=how, delta_color="off", delta_arrow="off",
             help="OpenCV JPEG quality, 1 to 100.")


def _fmt_db(value: float) -> str:
    return "∞ (lossless)" if math.isinf(value) else f"{value:.2f} dB"


_FORMATS = {
    "bytes": lambda v: f"{int(v):,}",
    "bpp": lambda v: f"{v:.3f}",
    "ratio": lambda v: f"{v:.1f} : 1",
    "psnr": lambda v: f"{v:.2f}",
    "ms_ssim": lambda v: f"{v:.4f}",
    "ms_ssim_db": lambda v: f"{v:.2f}",
    "ssimulacra2": lambda v: f"{v:.1f}",
    "ssim": lambda v: f"{v:.4f}",
    "blockiness": lambda v: f"{v:.3f}",
    "encode_ms": lambda v: f"{v:.1f}",
    "decode_ms": lambda v: f"{v:.1f}",
}


def _cell(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return _FORMATS[key](value)


def metrics_table(results: list[cmp.CodecResult]):
    """Metrics side by side, one column per codec, the best value of each row highlighted."""
    columns = []
    for r in results:
        name = r.label
        while name in columns:
            name += " "
        columns.append(name)
    index = ["Quality setting"] + [label for _, label, _ in cmp.ROWS]
    table = pd.DataFrame(
        {col: [r.quality_text] + [_cell(key, r.metrics.get(key)) for key, _, _ in cmp.ROWS]
         for col, r in zip(columns, results)},
        index=index)
    styles = pd.DataFrame("", index=index, columns=columns)
    if len(results) > 1:
        for key, label, _ in cmp.ROWS:
            best = cmp.winner(results, key)
            if best is not None:
                styles.loc[label, columns[[r.codec for r in results].index(best)]] = WIN_STYLE
    return table.style.apply(lambda _: styles, axis=None)


def downloads(comp: cmp.Comparison, views: dict, stem: str) -> None:
    """Every coded side's file; the learned codec's also as the PNG it decodes to."""
    extras = 0
    for r in comp.results:
        if r.kind == "learned":
            key = "download_aec" if not any(b.kind == "learned" for b in comp.results[:comp.results.index(r)]) \
                else f"download_aec_{r.codec}_{comp.results.index(r)}"
            st.download_button(
                f"{r.label} .aec stream · {cmp.format_bytes(r.num_bytes)}", r.data,
                file_name=f"{stem}.{r.codec}.aec", mime=r.mime, key=key, on_click="ignore",
                icon=":material/download:", width="stretch",
                help="The learned codec's file; `python -m aecore decompress` turns it back into a PNG.")
            decoded = r.decoded
            st.download_button(  # the PNG is made only when asked for (a callable is deferred)
                f"{r.label} decoded PNG", lambda decoded=decoded: to_png_bytes(decoded),
                file_name=f"{stem}.{r.codec}.png", mime="image/png",
                key=key.replace("download_aec", "download_png"), on_click="ignore", icon=":material/image:",
                width="stretch", help="What the learned codec's file decodes to, losslessly saved.")
            continue
        if r.codec == cmp.REFERENCE and r is comp.reference:
            key = "download_jpeg"
        else:
            key = "download_extra" if extras == 0 else f"download_extra_{extras}"
            extras += 1
        st.download_button(
            f"{r.label} · {cmp.format_bytes(r.num_bytes)}", r.data,
            file_name=f"{stem}.q{r.quality_text}.{r.extension}", mime=r.mime,
            key=key, on_click="ignore", icon=":material/download:", width="stretch")


def zip_download(settings: dict) -> None:
    """With several uploads: every one coded with these settings, in a zip made when asked for."""
    files = shared.uploaded_files()
    if len(files) < 2:
        return
    full = bool(st.session_state.get("full_size"))

    def build() -> bytes:  # runs on click, outside the page's run: no st.* calls, no st caches
        images = {}
        for f, name in zip(files, shared.unique_names([f.name for f in files])):
            try:
                pixels = load_image(f.getvalue(), name=f.name).pixels
            except ImageError:
                continue  # the page has said so already; the zip holds the readable ones
            images[name] = pixels if full else imaging.shrink_to_pixels(pixels, cmp.LARGE_PIXELS)
        fast = [None if s is None else dataclasses.replace(s, effort="fast")  # no minutes-long refinements here
                for s in (settings["left"], settings["right"], settings["extra"])]
        return batch.comparison_zip(images, *fast, codecs=shared.codec)

    st.download_button(
        f"All {len(files)} uploads coded (zip)", build, file_name="compare.zip", mime="application/zip",
        key="download_zip", on_click="ignore", icon=":material/folder_zip:", width="stretch",
        help="Each uploaded image coded with these settings: every side's file, the PNG it decodes to, "
             "and results.csv with sizes, bpp and PSNR, at fast encode effort. Large photos are coded from a "
             "copy of "
             f"{cmp.LARGE_PIXELS / 1e6:g} MP unless 'Code the full image' is ticked.")


@st.cache_data(max_entries=16, show_spinner=False)
def export_crops(run_key: str, _comparison: cmp.Comparison) -> tuple:
    """The report item's crops (`report.crops`), made once per comparison rather than on every run."""
    return report.crops(_comparison)


def exports(comp: cmp.Comparison, name: str, source: str, max_pixels: int | None, run_key: str) -> None:
    """The slide figure and the offline report, when the comparison follows the report's rule: one
    learned side coded on its own terms, JPEG (and any other classical side) matched to its size."""
    if (comp.learned is None or comp.reference is None or comp.mode != cmp.SAME_SIZE
            or comp.budget != comp.learned.num_bytes or sum(r.kind == "learned" for r in comp.results) != 1):
        return
    item = report.item_from(name, comp, made=export_crops(run_key, comp))
    target = report.Target(quality=comp.learned.quality)
    command = report.command_line([source], target, [r.codec for r in comp.results], max_pixels=max_pixels)
    shared.export_buttons(item, target, command, ("download_figure", "download_report"))


def heatmaps(comp: cmp.Comparison, run_key: str) -> None:
    views = build_heatmaps(run_key, comp)
    st.subheader("Where the errors are")
    st.caption(f"Absolute error per pixel (mean over RGB), one colour scale for every codec: black is exact, "
               f"yellow is {views['vmax']:g} levels of 255 or more. JPEG's 8×8 blocks show up as a grid.")
    cols = st.columns(len(comp.results))
    for col, r, heat in zip(cols, comp.results, views["heatmaps"]):
        col.image(heat, caption=f"{r.label} · {_fmt_db(r.metrics['psnr'])} PSNR", width="stretch")
    legend, _ = st.columns([1, 2])
    legend.image(views["legend"], caption=f"0  →  {views['vmax']:g}+ levels", width="stretch")


def remember_operating_point(comp: cmp.Comparison, name: str, shape) -> None:
    """The learned side's result in session state (`shared.OPERATING_POINT_KEY`), for the
    Rate-distortion page to mark on its curves."""
    learned = comp.learned
    if learned is not None:
        st.session_state[shared.OPERATING_POINT_KEY] = {
            "codec": learned.codec, "label": learned.label, "quality": learned.quality,
            "bytes": learned.num_bytes, "bpp": learned.metrics["bpp"], "psnr": learned.metrics["psnr"],
            "ms_ssim": learned.metrics["ms_ssim"], "image": name, "size": f"{shape[1]}x{shape[0]}"}


def main() -> None:
    st.title("Learned codec vs JPEG")
    st.caption("Same picture, same number of bytes: judge the pixels. Drag the divider, zoom in to the real "
               "pixels, and read the numbers below.")
    model = shared.selected_model()

    src_col, ctl_col = st.columns([5, 6], gap="large")
    with src_col:
        picked = shared.pick_image(
            upload_help="PNG, JPEG, WebP, TIFF, BMP or GIF; several at once for a zip of them all. Transparency "
                        "is flattened onto white; the first frame of an animation is used.",
            sample_help="Photos bundled with scikit-image; works offline.", multiple=True)
        if picked is None:
            return
        name, source_key, pixels, notes = picked
        st.markdown(describe(pixels, name))
        if notes:
            st.info("Converted while loading: " + "; ".join(notes) + ".", icon=":material/info:")
        coded, small = pixels, None
        h, w = pixels.shape[:2]
        if h * w > cmp.LARGE_PIXELS:
            small = shared.downscaled(source_key, pixels, cmp.LARGE_PIXELS)
            full = st.checkbox(
                f"Code the full {w}×{h} image", key="full_size", value=True,
                help="A large photo's result comes first from a copy of about "
                     f"{cmp.PREVIEW_PIXELS / 1e6:g} MP; the full image is coded after it in the background "
                     "(several seconds per codec) and its result replaces the copy's. Untick to code a "
                     f"{small.shape[1]}×{small.shape[0]} copy alone.")
            if not full:
                coded = small
                sh, sw = small.shape[:2]
                st.caption(f"Coding a {sw}×{sh} copy ({sh * sw / 1e6:.1f} MP); all numbers below are for that copy.")
            else:
                small = shared.downscaled(source_key, pixels, cmp.PREVIEW_PIXELS)  # the preview's copy
            label = st.empty()  # the preview's label, while the full image is coded
    with ctl_col:
        with st.container(border=True):
            if model is None:
                st.warning("No learned weights are installed yet, so this page shows JPEG on its own. "
                           "The learned codec appears as soon as trained weights are saved.",
                           icon=":material/hourglass_empty:")
            settings = effort_controls(controls(model), coded.shape)
            if st.session_state.pop(CANCELLED, False):
                st.info("Refinement cancelled: showing the fast encoder's result.", icon=":material/info:")

    sides = (settings["left"], settings["right"], settings["extra"])
    stamps = "|".join(weights.stamp(s.codec) for s in sides if s is not None and s.codec in learned_names())

    def keys(image) -> tuple[str, str]:
        image_key = f"{source_key}|{image.shape}"
        return image_key, "|".join(map(str, (image_key, stamps) + sides + (st.session_state.get(PRESETS_KEY),)))

    full_comp, full_key = None, None
    try:
        if small is not None and coded is pixels and not cmp.refines(sides):  # the copy first, then in full
            full_key = keys(pixels)[1]
            full_comp = full_size_result(full_key)
            if full_comp is None:
                coded = small
        image_key, run_key = keys(coded)
        height = slider_height(coded.shape)
        if cmp.refines(sides):
            comp = refined_comparison(run_key, coded, sides)
            if comp is None:
                return
            views = build_views(run_key, comp, height, image_key)
        elif full_comp is not None:
            comp = full_comp
            views = build_views(run_key, comp, height, image_key)
        else:
            if st.session_state.get(REFINE_TASK) is not None:  # back to fast effort: stop the refinement
                st.session_state.pop(REFINE_TASK).cancel()
            with st.spinner("Encoding, decoding and measuring..."):
                starts = st.session_state.setdefault("compare_starts", {})  # this session's own, never shared
                kept = st.session_state.setdefault("compare_kept", cmp.ResultCache())  # this session's own too
                comp = run_comparison(image_key, coded, *sides, stamps, starts, kept)
                starts.update({r.codec: r.quality for r in comp.results if r.kind == "classical"})
                views = build_views(run_key, comp, height, image_key)
    except MemoryError:
        st.error("This image is too large to code on this machine; use the downscaled copy or a smaller image.",
                 icon=":material/memory:")
        return
    except Exception as e:  # noqa: BLE001  (on stage: a message, never a traceback)
        st.error(f"Could not code this image: {shared.md_escape(str(e))}", icon=":material/error:")
        return

    st.divider()
    top = st.empty()  # the headline, first with PSNR alone, then with MS-SSIM once the slider is shown
    with top.container():
        headline(comp)
    shared.live_slider(views["slider"], height, key="compare_slider")
    remember_operating_point(comp, name, coded.shape)  # for the other pages, before anything can stop this run
    if full_key is not None and full_comp is None:
        # The copy's result is shown: now the full image, which gets the cores; the scores, tables,
        # downloads and heatmaps come with its result.
        task = full_size_task(full_key, pixels, sides)
        with label.container():
            st.fragment(full_size_progress, run_every=FULL_POLL_SECONDS)(task, pixels.shape, small.shape)
        return
    # Everything after the slider waits until the page has been still a moment: a run superseded
    # meanwhile (the quality slider dragged on) stops in the wait, not in scoring beside the new run.
    scored_runs = st.session_state.setdefault(SCORED_RUNS_KEY, set())
    if run_key not in scored_runs:  # scored before: cached, nothing to wait for
        shared.settle()
    for i, r in enumerate(comp.results):
        r.metrics.update(scores(run_key, i, False, comp))  # this run's copy of the comparison
    with top.container():
        headline(comp)
    remember_operating_point(comp, name, coded.shape)  # now with its MS-SSIM
    ph, pw = views["preview_shape"]
    if (ph, pw) != coded.shape[:2]:
        st.caption(f"The slider shows the images scaled to {pw}×{ph}; the numbers and downloads are for the "
                   f"coded {coded.shape[1]}×{coded.shape[0]} pixels.")

    table_col, side_col = st.columns([5, 2], gap="large")
    with table_col:
        st.subheader("Measured")
        for i, r in enumerate(comp.results):
            with st.spinner(f"Scoring SSIMULACRA 2 ({i + 1} of {len(comp.results)})..."):
                r.metrics.update(scores(run_key, i, True, comp))
        scored_runs.add(run_key)
        st.table(metrics_table(comp.results))
        st.caption("Highlighted: the better value in each row. SSIMULACRA 2 is a perceptual score: 90 is "
                   "visually lossless, 70 high, 50 medium, 30 low quality. Blockiness measures the 8×8 grid: "
                   "1 means none, higher is more visible. Times are one run on this server.")
        scored = imaging.shrink_to_pixels(coded, cmp.SSIMULACRA2_PIXELS)
        if scored is not coded:
            st.caption(f"SSIMULACRA 2 is scored on copies of the original and of each decoded image scaled to "
                       f"{scored.shape[1]}×{scored.shape[0]} (it takes seconds per megapixel); every other "
                       f"number is for the full {coded.shape[1]}×{coded.shape[0]} pixels.")
    with side_col:
        st.subheader("Download")
        downloads(comp, views, Path(name).stem.lower().replace(" ", "_") or "image")
        zip_download(settings)
        exports(comp, name, f"sample:{name}" if source_key.startswith("sample:") else name,
                cmp.LARGE_PIXELS if coded is not pixels else None, run_key)
    heatmaps(comp, run_key)


main()
