"""Rate-distortion: every codec's curve for one image, a set of images or Kodak; BD-rate against JPEG.

A thin shell: `aecore.rd` codes, measures, averages and computes BD-rates, `aecore.anchors`
holds the published Kodak curves; this page reads the widgets, caches every measured point
and draws Plotly charts. Rate is the whole file, 8 x bytes / pixels.

Each point (image, codec, weights, quality) is measured once per process (`measure`), so
switching scope or adding a codec only codes what is new. The Compare page's operating
point (session state "operating_point") is marked when this page shows the same image.
Widget keys (tests set them): rd_scope, rd_metric, rd_upload, rd_sample, rd_codecs, rd_samples,
rd_files, rd_published, rd_download_csv, rd_download_html.
"""
from __future__ import annotations

import io
import math
import threading
import time

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

from aecore import anchors, compare as cmp, rd, rd_chart, weights
from aecore.rd_chart import published_kin
from aecore.codecs import classical_names, learned_names
from aecore.io import sample_images
from pages import shared

THIS_IMAGE, IMAGE_SET, KODAK = "This image", "A set of images", "Kodak benchmark"
SCOPES = [THIS_IMAGE, IMAGE_SET, KODAK]
ANCHOR = "jpeg"
# The interactive sweep: 8 classical qualities (the benchmark sweeps 19), closer together at the
# bottom where the curves bend, and four trained levels of a learned model spread from its bottom
# to its top (the benchmark sweeps each; a learned point costs about ten classical ones, and the
# sweep waits on them): enough for a curve and a BD-rate (its cubic fit needs four), in seconds.
# The whole sweep is CPU-bound (about 20 CPU-seconds at 768x512 with the default codecs, a quarter
# of it the metrics), so its time follows the number of points.
CLASSICAL_QUALITIES = [5, 10, 20, 30, 45, 60, 75, 90]
LEARNED_POINTS = 4
# Curves are redrawn as codecs finish, but at most this often after the first: each redraw mounts
# a new chart in the browser, which shares the machine's cores with the sweep.
LIVE_SECONDS = 2.0
# Larger photos are swept on a copy of at most this many pixels: ~60 encodes each.
MAX_PIXELS = 1_000_000
# Published curves shown until the user picks others: the classical anchors and the
# learned models closest to ours (Balle's hyperprior, its mean-scale variant, Theis' autoencoder).
PUBLISHED_DEFAULT = ["JPEG (PIL 7.1.2 / libjpeg)", "WebP (PIL 7.1.2)", "bmshj2018-hyperprior (CompressAI, mse)",
                     "mbt2018-mean (CompressAI, mse)", "Theis 2017 compressive autoencoder (ICLR)"]
# Published curves that are none of our codecs: colours apart from the D3 palette ours use.
PUBLISHED_COLOURS = ["#111111", "#E7298A", "#00A6D6", "#B8860B", "#6A3D9A", "#1B9E77", "#A6761D", "#FF7F50"]
METRIC_WORDS = {"psnr": "PSNR", "ms_ssim_db": "MS-SSIM", "ssimulacra2": "SSIMULACRA 2"}
# The right-hand chart and the BD-rate table's second column: a perceptual metric. SSIMULACRA 2
# costs about 1 s per point on a megapixel, so points are scored by it only once it is chosen.
PERCEPTUAL = {"MS-SSIM": "ms_ssim_db", "SSIMULACRA 2": "ssimulacra2"}
NO_OVERLAP = "no overlap"
NOT_PUBLISHED = "not published"


# -- measuring ------------------------------------------------------------------------------

@st.cache_data(max_entries=20_000, show_spinner=False)
def measure(image_key: str, _image, codec: str, stamp: str, quality: float, perceptual: bool,
            _kept: cmp.ResultCache | None = None) -> dict:
    """One rate-distortion point: `codec` at `quality` on the image (keyed by its hash, not its pixels).

    `stamp` changes when learned weights are replaced, so fine-tuned weights are measured afresh;
    `perceptual` also scores SSIMULACRA 2. `_kept` (this session's) holds a learned model's
    analysis of the image for its other qualities (`LearnedCodec.reusing`): the same bytes and
    the whole encode's time, with one analysis per image instead of one per point.
    """
    coder = shared.codec(codec)
    if _kept is not None and coder.kind == "learned":
        coder = coder.reusing(_kept)
    return rd.point(coder, image_key, _image, quality, perceptual)


def qualities(codec: str) -> list[float]:
    """LEARNED_POINTS of a learned model's levels, evenly spread and its bottom and top
    among them (1, 3, 6, 8 of eight); CLASSICAL_QUALITIES."""
    if codec not in learned_names():
        return CLASSICAL_QUALITIES
    levels = rd.sweep_qualities(codec)
    k = min(LEARNED_POINTS, len(levels))  # a model has two levels at least
    return [levels[round(i * (len(levels) - 1) / (k - 1))] for i in range(k)]


def interleaved(points: list, learned: set) -> list:
    """Sweep points (name, key, pixels, codec, quality): the classical ones with those of the
    `learned` codecs spread evenly among them after the first classical codec's. Learned coding
    runs one point at a time (a lock keeps its thread count fixed), so started last they ran
    single file while the other worker sat idle."""
    classical = [p for p in points if p[3] not in learned]
    late = [p for p in points if p[3] in learned]
    if not classical or not late:
        return points
    head = [p for p in classical if p[3] == classical[0][3]]  # the first curve comes first
    rest = classical[len(head):]
    out = head
    for i, point in enumerate(late):  # learned point i goes before the share of the rest it leads
        out += [point] + rest[i * len(rest) // len(late):(i + 1) * len(rest) // len(late)]
    return out


def sweep(images: dict[str, tuple[str, object]], codecs: list[str], metric: str = "ms_ssim_db",
          live=None) -> list[dict]:
    """Rows of `rd.sweep` for {name: (cache key, pixels)}, measured with a progress bar,
    `rd.POINT_WORKERS` points at a time (`rd.in_parallel`; each one cached by `measure`).

    The first classical codec is started first (milliseconds a point, so its curve shows within
    a second or two), then the learned points spread among the other classical ones
    (`interleaved`); `live(rows)` is offered the rows of the complete curves after each point
    while one of them is not drawn yet, and says whether it drew them. The rows come back in the
    order of `codecs`."""
    learned = set(learned_names())  # one listing of the weights folders, not one per point
    order = sorted(codecs, key=lambda c: c in learned)  # stable: the user's order within each kind
    points = [(name, key, pixels, codec, q) for codec in order for name, (key, pixels) in images.items()
              for q in qualities(codec)]
    plan = interleaved(points, learned)
    stamps = {c: weights.stamp(c) for c in codecs}
    perceptual = metric == "ssimulacra2"
    kept = st.session_state.setdefault("rd_kept", cmp.ResultCache())  # this session's own, never shared
    calls = [lambda key=key, pixels=pixels, codec=codec, q=q: measure(key, pixels, codec, stamps[codec], q, perceptual,
                                                                      kept)
             for _, key, pixels, codec, q in plan]
    left = {c: sum(p[3] == c for p in plan) for c in order}
    ctx = get_script_run_ctx()  # the worker threads belong to this session's run (caches, no warnings)
    bar = st.progress(0.0, text="Coding and measuring...")
    rows, undrawn = [], False
    for i, row in rd.in_parallel(calls, initializer=lambda: add_script_run_ctx(threading.current_thread(), ctx)):
        name, codec = plan[i][0], plan[i][3]
        rows.append({**row, "image": name})
        bar.progress(len(rows) / len(plan), text=f"{label(codec)} at quality {plan[i][4]:g} · {name} "
                                                 f"({len(rows)} of {len(plan)})")
        left[codec] -= 1
        undrawn |= not left[codec]
        if live is not None and undrawn and len(rows) < len(plan):
            complete = [r for r in rows if not left[r["codec"]]]
            undrawn = not live(sorted(complete, key=lambda r: (codecs.index(r["codec"]), r["quality"])))
    bar.empty()
    kept.trim()  # the analyses filled in during the sweep count now
    return sorted(rows, key=lambda r: (codecs.index(r["codec"]), list(images).index(r["image"]), r["quality"]))


@st.cache_data(max_entries=2, show_spinner=False)
def kodak_rows(path: str, stamp: str) -> list[dict] | None:
    """Our Kodak benchmark's per-image rows (re-read when the file changes)."""
    return anchors.load_benchmark(path)


@st.cache_data(show_spinner=False)
def published() -> list[dict]:
    return anchors.load_published()


# -- picking images -------------------------------------------------------------------------

def pick_set() -> dict[str, tuple[str, object]]:
    """{name: (cache key, pixels)}: uploaded files, or the chosen sample photos."""
    files = st.file_uploader("Your images", type=shared.UPLOAD_TYPES, accept_multiple_files=True, key="rd_files",
                             help="Several files: the curves are the mean over them at each quality, "
                                  "the way benchmarks report a set.")
    samples = sample_images()
    chosen = st.multiselect("Or sample photos", list(samples), default=list(samples), key="rd_samples",
                            disabled=bool(files), help="Photos bundled with scikit-image.")
    if not files:
        return {name: (f"sample:{name}", samples[name]) for name in chosen}
    return shared.read_uploads(files)


def shrunk(key: str, pixels) -> tuple[str, object]:
    """The copy that is swept (at most MAX_PIXELS) and its cache key."""
    small = shared.downscaled(key, pixels, MAX_PIXELS) if pixels.shape[0] * pixels.shape[1] > MAX_PIXELS else pixels
    return f"{key}|{small.shape}", small


def pick_codecs() -> list[str]:
    options = learned_names() + classical_names()
    return st.multiselect("Codecs", options, default=rd.default_codecs(), key="rd_codecs", format_func=label,
                          help="Learned models at four trained levels from bottom to top; classical codecs at 8 qualities. "
                               "JPEG is the reference of the BD-rate table. Fine-tuned models can be added here.")


def label(codec: str) -> str:
    try:
        return shared.codec(codec).label or codec
    except Exception:  # noqa: BLE001  (a name that no longer loads still gets a label)
        return codec


# -- BD-rate --------------------------------------------------------------------------------

def bd_rates(rows: list[dict], anchor: str, metric: str = "ms_ssim_db") -> dict[str, dict[str, float]]:
    """{codec: {"psnr": %, metric: %}} against `anchor` (NaN where the curves do not overlap)."""
    tables = {m: rd.bd_table(rows, anchor, m) for m in ("psnr", metric)}
    return {codec: {m: tables[m][codec] for m in tables} for codec in tables["psnr"]}


def percent(value: float | None) -> str:
    if value is None:
        return NOT_PUBLISHED
    return NO_OVERLAP if math.isnan(value) else f"{value:+.1f}%"


def plain(value: float | None):
    """A CSV cell: the number, or empty where there is none."""
    return "" if value is None or math.isnan(value) else round(value, 3)


def words(value: float, anchor_name: str = "") -> str:
    """'38% fewer bits than JPEG', '5% more bits', 'about as many bits as JPEG' (no anchor: no comparison)."""
    if abs(value) < 0.5:
        return "about as many bits" + (f" as {anchor_name}" if anchor_name else "")
    than = f" than {anchor_name}" if anchor_name else ""
    return f"{abs(value):.0f}% {'fewer' if value < 0 else 'more'} bits{than}"


def sentence(name: str, rates: dict[str, float | None], anchor_name: str) -> str:
    """'hyperprior needs 38% fewer bits than JPEG for the same PSNR, and 41% fewer bits for the same MS-SSIM.'

    A rate of None is a metric that was not published; NaN, curves that share no range.
    """
    known = [(METRIC_WORDS[m], v) for m, v in rates.items() if v is not None and not math.isnan(v)]
    missing = [METRIC_WORDS[m] for m, v in rates.items() if v is not None and math.isnan(v)]
    if not known:
        return (f"**{shared.md_escape(name)}** and {anchor_name} reach no common quality, so there is no BD-rate: "
                "their curves do not overlap.")
    parts = [f"{words(v, anchor_name if i == 0 else '')} for the same {metric}" for i, (metric, v) in enumerate(known)]
    text = f"**{shared.md_escape(name)}** needs " + ", and ".join(parts) + "."
    if missing:
        text += f" No common range in {' or '.join(missing)}."
    return text


def bd_section(entries: list[tuple[str, str, dict[str, float], str]], scope: str, fig: go.Figure,
               note: str = "", metric: str = "ms_ssim_db") -> None:
    """The BD-rate table, a sentence per codec and the downloads. entries: (name, anchor name, rates, kind)."""
    st.subheader("BD-rate against JPEG")
    st.caption("Bjøntegaard delta rate: the average difference in bits for the same quality, over the quality "
               "range both curves cover (negative: fewer bits than JPEG). Curves that share no range have no "
               "BD-rate. " + note)
    if not entries:
        st.info("Add JPEG and at least one other codec to compare them.", icon=":material/info:")
    else:
        columns = {"For the same PSNR": [percent(r["psnr"]) for _, _, r, _ in entries],
                   f"For the same {METRIC_WORDS[metric]}": [percent(r[metric]) for _, _, r, _ in entries]}
        anchors_used = [a for _, a, _, _ in entries]
        if len(set(anchors_used)) > 1:  # ours against our JPEG, published ones against the published JPEG
            columns = {"Against": anchors_used, **columns}
        table = pd.DataFrame(columns, index=pd.Index([n for n, _, _, _ in entries], name="Codec"))
        table_col, text_col = st.columns([3, 4], gap="large")
        table_col.table(table)
        with text_col:
            st.markdown("\n".join(f"- {sentence(n, r, a)}" for n, a, r, _ in entries))
    csv_rows = [{"codec": n, "kind": k, "anchor": a, "scope": scope,
                 "bd_rate_psnr_percent": plain(r["psnr"]), f"bd_rate_{metric}_percent": plain(r[metric])}
                for n, a, r, k in entries]
    buf = io.StringIO()
    if csv_rows:
        rd.write_csv(csv_rows, buf)
    a, b, _ = st.columns([1, 1, 3])
    a.download_button("BD-rate table (CSV)", buf.getvalue(), file_name="bd_rate.csv", mime="text/csv",
                      key="rd_download_csv", on_click="ignore", icon=":material/download:", width="stretch",
                      disabled=not csv_rows, help="Percent; empty where the curves do not overlap.")
    b.download_button("Chart (HTML)", lambda: fig.to_html(include_plotlyjs=True, full_html=True),
                      file_name="rate_distortion.html", mime="text/html", key="rd_download_html",
                      on_click="ignore", icon=":material/download:", width="stretch",
                      help="The interactive chart as one self-contained file (works offline).")


def our_entries(rows: list[dict], metric: str = "ms_ssim_db") -> list[tuple[str, str, dict[str, float], str]]:
    if not any(r["codec"] == ANCHOR for r in rows):
        return []
    anchor_name = label(ANCHOR)
    return [(label(c), anchor_name, rates, "measured") for c, rates in bd_rates(rows, ANCHOR, metric).items()]


# -- scopes ---------------------------------------------------------------------------------

def pick_metric() -> str:
    chosen = st.radio("Perceptual metric", list(PERCEPTUAL), key="rd_metric", horizontal=True,
                      persist_state="session",
                      help="The right-hand chart and the BD-rate table's second column. SSIMULACRA 2 (the JPEG "
                           "XL project's perceptual score: 90 visually lossless, 50 medium, 30 low) takes about "
                           "a second per point on a megapixel, so the points are scored once you choose it.")
    return PERCEPTUAL[chosen]


def show(rows: list[dict], averaged: bool, scope: str, point=None, references=None, extra_entries=(),
         note: str = "", metric: str = "ms_ssim_db") -> None:
    fig = rd_chart.figure(rows, averaged, point, references, metric, label=label)
    st.plotly_chart(fig, key="rd_chart", config={"displaylogo": False})
    if fig.layout.xaxis.range:  # set only when some points lie beyond it
        st.caption(f"The rate axis stops at {fig.layout.xaxis.range[1]:.1f} bpp, where the codecs differ; the "
                   "chart's autoscale button shows every point.")
    bd_section(our_entries(rows, metric) + list(extra_entries), scope, fig, note, metric)


def this_image() -> None:
    pick_col, codec_col = st.columns([5, 6], gap="large")
    with pick_col:
        picked = shared.pick_image("rd_", upload_help="PNG, JPEG, WebP, TIFF, BMP or GIF. Upload the Compare "
                                                      "page's image to see its operating point here.")
    with codec_col:
        codecs = pick_codecs()
    if picked is None:
        return
    name, key, pixels, _ = picked
    key, coded = shrunk(key, pixels)
    h, w = coded.shape[:2]
    note = "" if coded is pixels else f" (a {w}×{h} copy of the {pixels.shape[1]}×{pixels.shape[0]} original)"
    if not codecs:
        st.info("Pick at least one codec.", icon=":material/info:")
        return
    metric = pick_metric()
    chart, drawn = st.empty(), []

    def live(rows_so_far: list[dict]) -> bool:  # curves drawn as their last points arrive
        if drawn and time.monotonic() - drawn[-1] < LIVE_SECONDS:
            return False
        drawn.append(time.monotonic())
        chart.plotly_chart(rd_chart.figure(rows_so_far, False, None, None, metric, label=label),
                           key=f"rd_live_{len(drawn)}", config={"displaylogo": False})
        return True

    rows = sweep({name: (key, coded)}, codecs, metric, live=live)
    chart.empty()
    point = st.session_state.get(shared.OPERATING_POINT_KEY)
    mark = (point is not None and point.get("image") == name and point.get("size") == f"{w}x{h}"
            and point.get("codec") in codecs)
    st.markdown(f"**{shared.md_escape(name)}**{note} · {w}×{h} px · {len(rows)} points")
    if mark:
        st.caption(f"The star is the Compare page's result: {shared.md_escape(point['label'])} at quality "
                   f"{point['quality']:g}, {point['bpp']:.3f} bpp.")
    elif point is not None:
        st.caption(f"The Compare page's result is for {shared.md_escape(str(point.get('image')))} "
                   f"({point.get('size', '').replace('x', '×')}); pick that image here to see it on the curves.")
    show(rows, False, THIS_IMAGE, point if mark else None, metric=metric)


def image_set() -> None:
    pick_col, codec_col = st.columns([5, 6], gap="large")
    with pick_col:
        images = pick_set()
    with codec_col:
        codecs = pick_codecs()
    if not images:
        st.info("Pick at least one sample photo or upload images.", icon=":material/info:")
        return
    if not codecs:
        st.info("Pick at least one codec.", icon=":material/info:")
        return
    swept = {name: shrunk(key, pixels) for name, (key, pixels) in images.items()}
    metric = pick_metric()
    rows = rd.average(sweep(swept, codecs, metric))
    st.markdown(f"**{len(images)} images** · each curve is the mean over them at each quality setting")
    show(rows, True, IMAGE_SET, metric=metric)


def kodak() -> None:
    path = anchors.BENCHMARK_CSV
    stamp = f"{path.stat().st_mtime_ns}:{path.stat().st_size}" if path.is_file() else ""
    rows = kodak_rows(str(path), stamp) if stamp else None
    points = published()
    names = list(dict.fromkeys(p["codec"] for p in points))
    chosen = st.multiselect("Published curves", names, default=[n for n in PUBLISHED_DEFAULT if n in names],
                            key="rd_published",
                            help="Results others published on Kodak (CompressAI and TensorFlow Compression result "
                                 "files, papers), drawn dashed. Their sources are listed below the table.")
    unrelated = [n for n in chosen if published_kin(n) is None]  # the others take their codec's colour
    own = {n: PUBLISHED_COLOURS[i % len(PUBLISHED_COLOURS)] for i, n in enumerate(unrelated)}
    references = [{"codec": n, "points": [p for p in points if p["codec"] == n], "colour": own.get(n)}
                  for n in chosen]
    metric = pick_metric()
    extra = []
    published_anchor = [p for p in points if p["codec"] == anchors.PUBLISHED_JPEG]
    others = [p for p in points if p["codec"] in chosen and p["codec"] != anchors.PUBLISHED_JPEG]
    if others:
        for codec, rates in bd_rates(published_anchor + others, anchors.PUBLISHED_JPEG, metric).items():
            if not any(math.isfinite(p.get(metric, math.nan)) for p in others if p["codec"] == codec):
                rates[metric] = None  # its authors gave PSNR only (and none gave SSIMULACRA 2)
            extra.append((f"{codec} (published)", "published JPEG", rates, "published"))
    if rows:
        averaged = rd.average(rows)
        images = max(r["images"] for r in averaged)
        st.markdown(f"**Kodak, {images} images** · our measurements (solid, mean over images per quality) "
                    "beside published results (dashed)")
    else:
        averaged = []
        st.info("The Kodak benchmark has not been run yet, so only the published curves are shown. "
                "`python benchmarks/rd_kodak.py` measures every codec on Kodak and its curves appear here.",
                icon=":material/hourglass_empty:")
    show(averaged, True, KODAK, references=references, extra_entries=extra,
         note="Our codecs are measured against our JPEG (OpenCV's libjpeg-turbo, 4:2:0); published ones against "
              "the published JPEG (Pillow's libjpeg, from CompressAI's results).", metric=metric)
    if chosen:
        with st.expander("Sources of the published curves"):
            sources = {n: points_source(points, n) for n in chosen}
            st.table(pd.DataFrame({"Source": list(sources.values())}, index=pd.Index(list(sources), name="Codec")))
            st.caption("Published numbers are cited as their authors report them (mean RGB PSNR and MS-SSIM "
                       "over the 24 Kodak images); they were not measured here.")


def points_source(points: list[dict], codec: str) -> str:
    return next(p["source"] for p in points if p["codec"] == codec)


def main() -> None:
    st.title("Rate-distortion")
    st.caption("How many bits each codec needs for each level of quality: up and to the left is better. "
               "Every point measured here is a real file, coded, decoded and compared with the original.")
    scope = st.radio("Scope", SCOPES, key="rd_scope", horizontal=True, persist_state="session",
                     help="One image (the Compare page's, by default), the mean over several, or the Kodak "
                          "benchmark beside published results.")
    try:
        if scope == THIS_IMAGE:
            this_image()
        elif scope == IMAGE_SET:
            image_set()
        else:
            kodak()
    except MemoryError:
        st.error("This image is too large to sweep on this machine; try a smaller one.", icon=":material/memory:")
    except Exception as e:  # noqa: BLE001  (on stage: a message, never a traceback)
        st.error(f"Could not draw the curves: {shared.md_escape(str(e))}", icon=":material/error:")


main()
