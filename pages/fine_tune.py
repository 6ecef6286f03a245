"""Fine-tune: adapt the learned codec to your own kind of images, in a background job.

A thin shell: `aecore.jobs` creates, runs, queues, cancels and resumes jobs (each in its
own process, everything in its own folder), `aecore.weights` names and imports weights;
this page reads the widgets, starts jobs and shows what their folders say. Nothing about
a job lives in the page: close the tab or restart the app and the jobs are listed again.

The job part of the page is a fragment that refreshes itself every REFRESH_SECONDS while a
job is queued or running, so the progress bar and curves move without rerunning the page;
when a job starts, finishes or stops, it reruns the whole page once, so new weights reach
the sidebar's model picker at once.
Widget keys (tests set them): ft_base, ft_files, ft_use_samples, ft_holdout, ft_steps,
ft_quality, ft_lr, ft_name, ft_crop, ft_batch, ft_description, ft_start, ft_cancel,
ft_show_<job>, ft_resume_<job>, ft_delete_<job>, ft_download_weights, ft_download_card,
ft_open_compare, ft_upload_weights, ft_upload_name, ft_upload_add.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots
import streamlit as st

from aecore import io, jobs, weights
from aecore.imaging import preview
from pages import shared

DEFAULT_STEPS = jobs.JobConfig.steps  # 200: the target run, 10 images in under 10 minutes
REFRESH_SECONDS = 1.5   # live view of a running job: often enough to look alive, cheap to read
LEARNING_RATES = [1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3]
CROPS = [64, 128, 192, 256]
MAX_LISTED = 30         # the job list shows the newest ones
THUMB_PX, MAX_THUMBS = 64, 30  # the chosen images as a strip of square thumbnails
STATE_BADGES = {"created": ("Created", "gray", ":material/draft:"),
                "queued": ("Queued", "orange", ":material/schedule:"),
                "running": ("Running", "blue", ":material/directions_run:"),
                "finished": ("Finished", "green", ":material/check_circle:"),
                "failed": ("Failed", "red", ":material/error:"),
                "cancelled": ("Cancelled", "gray", ":material/cancel:")}
BASE_COLOUR, NEW_COLOUR, VAL_COLOUR = "#7f7f7f", qualitative.D3[0], qualitative.D3[1]
JOB_KEY, FLASH_KEY = "ft_job", "ft_flash"


# -- small helpers --------------------------------------------------------------------------

def duration(seconds: float) -> str:
    """'45 s', '3 min 20 s', '25 min', '1 h 5 min'."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 600:
        return f"{s // 60} min {s % 60:02d} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    h, m = divmod(round(s / 60), 60)
    return f"{h} h {m} min" if m else f"{h} h"


def lr_text(value: float) -> str:
    """1e-4, 2e-5: how learning rates are written."""
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def when(timestamp: float | None) -> str:
    if not timestamp:
        return ""
    if time.strftime("%Y%m%d", time.localtime(timestamp)) == time.strftime("%Y%m%d"):
        return time.strftime("today %H:%M", time.localtime(timestamp))
    return time.strftime("%d %b %H:%M", time.localtime(timestamp))


def percent(value, missing: str = "no overlap") -> str:
    return missing if value is None or not math.isfinite(value) else f"{value:+.1f}%"


def finite(values) -> list:
    """Plotly draws None as a gap (a lossless point's infinite PSNR, a missing value)."""
    return [v if isinstance(v, (int, float)) and math.isfinite(v) else None for v in values]


def show_flash() -> None:
    """The last job action's error (set by `_act`), shown until the next action."""
    text = st.session_state.get(FLASH_KEY)
    if text:
        st.error(text, icon=":material/error:")


def count(n: int, word: str) -> str:
    """'1 step', '2 steps'."""
    return f"{n} {word}{'s' * (n != 1)}"


# -- the new job form -----------------------------------------------------------------------

@st.cache_data(max_entries=256, show_spinner=False)
def thumbnail(key: str, _pixels: np.ndarray) -> np.ndarray:
    """A square centre crop of the image, THUMB_PX on a side (cached by `key`, not by the pixels)."""
    h, w = _pixels.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return preview(np.ascontiguousarray(_pixels[top:top + side, left:left + side]), THUMB_PX)


def pick_images() -> dict[str, np.ndarray]:
    """{name: pixels}: the uploaded images, or the built-in sample photos (shown as thumbnails)."""
    use_samples = bool(st.session_state.get("ft_use_samples", False))
    files = st.file_uploader(
        "Your images", type=shared.UPLOAD_TYPES, accept_multiple_files=True, key="ft_files", disabled=use_samples,
        help=f"Photos of the kind you want to compress better: up to {jobs.max_images()}. "
             "A few are held out to measure the result; the rest are trained on (random crops).")
    samples = io.sample_images()
    st.checkbox(f"Use the {len(samples)} sample photos", key="ft_use_samples", persist_state="session",
                help="Instead of uploads: the photos bundled with scikit-image, a quick way to try fine-tuning.")
    if use_samples:
        found = {name: (f"sample:{name}", pixels) for name, pixels in samples.items()}
    else:
        found = shared.read_uploads(files)
    picked = {name: pixels for name, (_, pixels) in found.items()}
    keys = {name: key for name, (key, _) in found.items()}
    if picked:
        names = list(picked)[:MAX_THUMBS]
        st.image([thumbnail(keys[n], picked[n]) for n in names], width=THUMB_PX)
        n = len(picked)
        mp = sum(p.shape[0] * p.shape[1] for p in picked.values()) / 1e6
        more = f" (the first {len(names)} shown)" if n > len(names) else ""
        st.caption(f"{count(n, 'image')}{more} · {mp:.1f} MP in all")
    return picked


def settings(models: dict[str, str], making: set[str]) -> jobs.JobConfig:
    """The job's settings from the widgets; `jobs.plan` says what is wrong with them."""
    if st.session_state.get("ft_base") not in models:
        st.session_state["ft_base"] = shared.selected_model() or next(iter(models))
    base = st.selectbox("Base model", list(models), format_func=lambda n: models[n], key="ft_base",
                        persist_state="session",
                        help="The learned weights to start from. They stay as they are; the result is saved "
                             "as new weights.")
    if st.session_state.pop("ft_rename", False):
        st.session_state["ft_name"] = ""
    # Left empty, the name follows the base model (shown as the placeholder); typed, it stays.
    suggestion = weights.suggest_name(base, making)
    name = st.text_input("Name of the new weights", key="ft_name", persist_state="session", max_chars=64,
                         placeholder=suggestion,
                         help=f"How they appear in the model picker: {weights.NAME_RULE}. "
                              f"Left empty: {suggestion}.").strip() or suggestion
    a, b = st.columns(2)
    limit = jobs.max_steps()
    if not 1 <= st.session_state.get("ft_steps", 1) <= limit:
        st.session_state["ft_steps"] = limit
    steps = a.number_input("Training steps", 1, limit, min(DEFAULT_STEPS, limit), step=10, key="ft_steps",
                           persist_state="session",
                           help=f"Each step trains on a batch of random crops. {DEFAULT_STEPS} is a good start; "
                                f"at most {limit} on this server.")
    holdout = b.number_input("Hold-out images", 1, jobs.max_images(), None, step=1, key="ft_holdout",
                             persist_state="session", placeholder="auto",
                             help="Images kept out of training: the validation points while it trains and the "
                                  "before/after comparison at the end. Automatic: a fifth of them, at least 1.")
    try:
        levels = weights.meta_model(base).levels
    except weights.WeightsError:
        levels = 1  # the plan says what is wrong with the base
    if levels > 1:
        current = st.session_state.get("ft_quality")
        if not (isinstance(current, (tuple, list)) and 1 <= current[0] <= current[1] <= levels):
            st.session_state["ft_quality"] = (1, levels)
        q_min, q_max = st.slider("Quality range", 1, levels, key="ft_quality", persist_state="session",
                                 help="The quality levels trained (and compared at the end): narrow it to the "
                                      "rates you use, e.g. only the high qualities for photos you keep.")
    else:
        q_min = q_max = 1
    lr = st.select_slider("Learning rate", LEARNING_RATES, value=1e-4, key="ft_lr", persist_state="session",
                          format_func=lr_text,
                          help="1e-4 adapts the weights without forgetting what they know; higher learns faster "
                               "and risks worse results on other images.")
    with st.expander("More settings"):
        c, d = st.columns(2)
        crop = c.select_slider("Crop size", CROPS, value=128, key="ft_crop", persist_state="session",
                               format_func=lambda v: f"{v} px",
                               help="Side of the random training crops; smaller images are left out.")
        batch = d.number_input("Batch size", 1, 32, 8, key="ft_batch", persist_state="session",
                               help="Crops per training step.")
        description = st.text_input("What the images are", key="ft_description", persist_state="session",
                                    max_chars=200, placeholder="e.g. product photos on white",
                                    help="Written into the new weights' model card.")
    return jobs.JobConfig(base=base, out=name, steps=int(steps), lr=float(lr), crop=int(crop),
                          batch_size=int(batch), holdout=None if holdout is None else int(holdout),
                          quality_min=int(q_min), quality_max=int(q_max), description=description.strip())


def estimate_text(p: jobs.Plan) -> str:
    """How long the planned job takes here, and why."""
    cfg, held = p.config, len(p.holdout)
    later = f" It starts when the running job ends, in about {duration(p.queue_wait)}." if p.queue_wait else ""
    return (f"**About {duration(p.seconds)} on this machine**: {count(cfg.steps, 'step')} of "
            f"{count(cfg.batch_size, 'crop')} of {cfg.crop}×{cfg.crop} px at about {jobs.STEPS_PER_SECOND:g} steps/s, "
            f"then coding the {count(held, 'hold-out image')} at {len(jobs.eval_qualities(cfg))} qualities with the "
            f"base and the new weights.{later} Measured for the default model on two busy cores; smaller models "
            "finish sooner.")


def start_job(config: jobs.JobConfig, images: dict[str, np.ndarray]) -> None:
    try:
        with st.spinner("Preparing the job: saving the images..."):
            job = jobs.start(jobs.create_job(config, images))
    except (jobs.JobError, io.ImageError, weights.WeightsError) as e:
        st.error(f"Could not start: {shared.md_escape(str(e))}.", icon=":material/error:")
        return
    except OSError as e:
        st.error(f"Could not save the job ({shared.md_escape(str(e))}); is the disk full?", icon=":material/error:")
        return
    st.session_state[JOB_KEY] = job.id
    st.session_state["ft_rename"] = True  # the next job starts from a fresh suggestion
    st.session_state.pop(FLASH_KEY, None)
    st.rerun()


def new_job_form(models: dict[str, str], all_jobs: list[jobs.Job]) -> None:
    with st.container(border=True):
        st.subheader("New fine-tune")
        pick_col, set_col = st.columns([5, 6], gap="large")
        with pick_col:
            images = pick_images()
        with set_col:
            config = settings(models, jobs.making(all_jobs))
        p = jobs.plan(config, images, all_jobs)
        for problem in p.problems if images else ():
            st.error(f"{shared.md_escape(problem[0].upper() + problem[1:])}.", icon=":material/error:")
        if p.left_out:
            st.warning(f"Left out ({count(len(p.left_out), 'image')}, not trained on or held out): "
                       + "; ".join(f"**{shared.md_escape(n)}**: {why}" for n, why in p.left_out.items()) + ".",
                       icon=":material/hide_image:")
        if not images:
            st.info("Upload at least two images (one to train on, one to hold out), or tick the sample photos, "
                    "to see how long a fine-tune takes here.", icon=":material/add_photo_alternate:")
        elif p.seconds:
            st.info(estimate_text(p), icon=":material/schedule:")
        if st.button("Start fine-tuning", key="ft_start", type="primary", icon=":material/play_arrow:",
                     disabled=bool(p.problems or not images)):
            start_job(config, images)


# -- a job: progress, curves, result --------------------------------------------------------

def badge(state: str) -> None:
    label, colour, icon = STATE_BADGES.get(state, (state, "gray", None))
    st.badge(label, color=colour, icon=icon)


def curves(records: list[dict], job_id: str) -> go.Figure:
    """Loss, bpp and PSNR of the training batches (lines) and of the hold-out images (points)."""
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.07,
                        subplot_titles=("Loss (rate + λ·distortion)", "Rate (bits per pixel)", "PSNR (dB)"))
    steps = [r["step"] for r in records]
    val = [r for r in records if r.get("val")]
    for col, key in enumerate(("loss", "bpp", "psnr"), start=1):
        fig.add_trace(go.Scatter(
            x=steps, y=finite(r.get(key) for r in records), mode="lines", name="training batches",
            legendgroup="train", showlegend=col == 1, line={"color": NEW_COLOUR, "width": 1.8},
            hovertemplate=f"step %{{x}}<br>{key} %{{y:.4g}}<extra>training batch</extra>"), row=1, col=col)
        if val:
            means = [float(np.mean([lv[key] for lv in r["val"].values()])) for r in val]
            detail = ["<br>".join(f"{q}: {lv[key]:.4g}" for q, lv in r["val"].items()) for r in val]
            fig.add_trace(go.Scatter(
                x=[r["step"] for r in val], y=finite(means), mode="lines+markers", name="hold-out images",
                legendgroup="val", showlegend=col == 1, customdata=detail,
                line={"color": VAL_COLOUR, "width": 1, "dash": "dot"},
                marker={"color": VAL_COLOUR, "size": 8, "symbol": "diamond"},
                hovertemplate=f"step %{{x}}<br>{key} %{{y:.4g}} (mean)<br>%{{customdata}}<extra>hold-out</extra>"),
                row=1, col=col)
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=300, margin={"t": 30, "b": 10, "l": 10, "r": 10}, uirevision=job_id,
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.12, "xanchor": "right", "x": 1})
    return fig


def rd_figure(result: dict) -> go.Figure:
    """Before/after on the hold-out images: bpp against PSNR and against MS-SSIM (dB)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=("PSNR (RGB), higher is better", "MS-SSIM in dB, higher is better"))
    for who, name, colour, dash in (("base_rd", f"{result['base']} (before)", BASE_COLOUR, "dash"),
                                    ("new_rd", f"{result['weights']} (after)", NEW_COLOUR, None)):
        pts = sorted(result.get(who) or [], key=lambda r: r["quality"])
        for col, metric in ((1, "psnr"), (2, "ms_ssim_db")):
            fig.add_trace(go.Scatter(
                x=[p["bpp"] for p in pts], y=finite(p.get(metric) for p in pts), mode="lines+markers",
                name=name, legendgroup=who, showlegend=col == 1, customdata=[p["quality"] for p in pts],
                line={"color": colour, "width": 2.5, "dash": dash}, marker={"size": 7},
                hovertemplate=f"<b>{name}</b> quality %{{customdata:g}}<br>%{{x:.3f}} bpp · "
                              "%{y:.2f} dB<extra></extra>"), row=1, col=col)
    fig.update_xaxes(title_text="bits per pixel (whole file)")
    fig.update_yaxes(title_text="dB")
    fig.update_layout(height=400, margin={"t": 40, "b": 10, "l": 10, "r": 10},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.16, "xanchor": "left", "x": 0})
    return fig


def verdict(result: dict) -> str:
    n = len(result.get("holdout_images") or [])
    new, base, bd = shared.md_escape(result["weights"]), shared.md_escape(result["base"]), result.get("bd_rate")
    where = f"on the {count(n, 'hold-out image')}"
    if bd is None or not math.isfinite(bd):
        return (f"The curves of **{new}** and **{base}** reach no common PSNR {where}, so there is no BD-rate; "
                "compare the points in the chart.")
    if abs(bd) < 0.5:
        return f"**{new}** needs about as many bits as **{base}** for the same PSNR {where}."
    if bd < 0:
        return f"**{new}** needs **{-bd:.1f}% fewer bits** than **{base}** for the same PSNR {where}."
    return (f"**{new}** needs {bd:.1f}% more bits than **{base}** for the same PSNR {where}: this fine-tune did "
            "not pay off. More images, more steps or a lower learning rate may help.")


def rd_table(result: dict) -> pd.DataFrame:
    base = {r["quality"]: r for r in result.get("base_rd") or []}
    new = {r["quality"]: r for r in result.get("new_rd") or []}
    qualities = sorted(set(base) | set(new))

    def cell(points: dict, q: float, key: str, fmt: str) -> str:
        value = points.get(q, {}).get(key)
        return fmt.format(value) if isinstance(value, (int, float)) and math.isfinite(value) else "–"
    return pd.DataFrame({
        "bpp before": [cell(base, q, "bpp", "{:.3f}") for q in qualities],
        "bpp after": [cell(new, q, "bpp", "{:.3f}") for q in qualities],
        "PSNR before (dB)": [cell(base, q, "psnr", "{:.2f}") for q in qualities],
        "PSNR after (dB)": [cell(new, q, "psnr", "{:.2f}") for q in qualities],
        "MS-SSIM before": [cell(base, q, "ms_ssim", "{:.4f}") for q in qualities],
        "MS-SSIM after": [cell(new, q, "ms_ssim", "{:.4f}") for q in qualities],
    }, index=pd.Index([f"{q:g}" for q in qualities], name="Quality"))


def _open_in_compare(name: str) -> None:
    st.session_state[shared.MODEL_KEY] = name  # the sidebar picker's key: set before it is drawn


def result_view(job: jobs.Job) -> None:
    result = job.result()
    if result is None:
        st.warning("This job finished, but its result file is missing.", icon=":material/warning:")
        return
    st.markdown(verdict(result))
    a, b, c = st.columns(3)
    a.metric("BD-rate, same PSNR", percent(result.get("bd_rate"), "–"),
             help="Bjøntegaard delta rate of the new weights against the base on the hold-out images: the average "
                  "difference in bits for the same PSNR (negative: fewer bits).")
    b.metric("BD-rate, same MS-SSIM", percent(result.get("bd_rate_ms_ssim"), "–"),
             help="The same for MS-SSIM (in dB). –: the curves share no range.")
    c.metric("Hold-out images", len(result.get("holdout_images") or []),
             help=", ".join(result.get("holdout_images") or []) or None)
    st.plotly_chart(rd_figure(result), key="ft_rd_chart", config={"displaylogo": False})
    table_col, bd_col = st.columns([3, 1], gap="large")
    with table_col:
        st.markdown("**Hold-out images, mean at each quality**")
        st.table(rd_table(result))
    with bd_col:
        st.markdown("**BD-rate, new vs base**")
        st.table(pd.DataFrame({"BD-rate": [percent(result.get("bd_rate")), percent(result.get("bd_rate_ms_ssim"))]},
                              index=pd.Index(["Same PSNR", "Same MS-SSIM"], name="Quality by")))
    weights_download(job.config.out)


def weights_download(name: str) -> None:
    path = weights.available().get(name)
    if path is None or not path.with_suffix(".json").exists():
        st.warning(f"The weights **{shared.md_escape(name)}** are no longer installed.", icon=":material/warning:")
        return
    st.caption(f"**{shared.md_escape(name)}** is in the model picker of every page, and the command line codes with it "
               f"(`python -m aecore compress --codec {name} in.png out.aec`). Download both files to keep or share "
               "them; add them back below.")
    a, b, c, _ = st.columns([1, 1, 1, 1])
    a.download_button("Weights (.safetensors)", lambda: path.read_bytes(), file_name=path.name,
                      mime="application/octet-stream", key="ft_download_weights", on_click="ignore",
                      icon=":material/download:", width="stretch", help="The tensors; never a pickle.")
    b.download_button("Model card (.json)", lambda: path.with_suffix(".json").read_bytes(),
                      file_name=path.with_suffix(".json").name, mime="application/json", key="ft_download_card",
                      on_click="ignore", icon=":material/download:", width="stretch",
                      help="The architecture, the training record and the hold-out results.")
    if c.button("Compare with them", key="ft_open_compare", icon=":material/compare:", width="stretch",
                on_click=_open_in_compare, args=(name,), help="Open the Compare page with these weights."):
        st.switch_page("pages/compare.py")


def progress_view(job: jobs.Job, p: dict) -> None:
    state = p["state"]
    if state == "queued":
        pos = p.get("queue_position")
        st.progress(0.0, text=f"Queued{f': number {pos} in line' if pos else ''} · starts when a running job ends "
                              f"· about {duration(p['seconds_left'])} of work once it starts")
    elif state == "running":
        if job.status.get("cancel_requested"):
            text = "Stopping: saving a checkpoint..."
        elif p.get("phase") == "evaluating":
            text = (f"Training done · measuring the base and the new weights on the hold-out images · "
                    f"about {duration(p['seconds_left'])} left")
        elif not p["records"]:
            text = ("Starting: loading PyTorch, the images and the base weights · "
                    f"about {duration(p['seconds_left'])} left")
        else:
            speed = p.get("steps_per_s")
            text = (f"Step {p['step']} of {p['total']}" + (f" · {speed:.2f} steps/s" if speed else "")
                    + f" · about {duration(p['seconds_left'])} left")
        st.progress(p["fraction"], text=text)
    if state in jobs.ACTIVE:
        st.button("Cancel", key="ft_cancel", icon=":material/stop_circle:", on_click=_act,
                  args=("cancel", job.id),
                  help="Stops after saving a checkpoint; resume continues exactly from there.")
    elif state == "failed":
        st.error(f"This job failed: {shared.md_escape(p.get('error') or 'no reason was recorded')}. Resume it below: "
                 f"training continues from its last checkpoint (step {p['step']}).", icon=":material/error:")
    elif state == "cancelled":
        st.warning(f"Cancelled at step {p['step']} of {p['total']}. Resume it below: training continues from "
                   "there.", icon=":material/pause_circle:")


def job_view(job: jobs.Job) -> None:
    p = job.progress()
    cfg = job.config
    title, state_col = st.columns([5, 1], vertical_alignment="center")
    title.subheader(cfg.out)
    with state_col:
        badge(p["state"])
    facts = [f"from **{shared.md_escape(cfg.base)}**", count(cfg.steps, "step"),
             f"{len(job.train_images)} training + {len(job.holdout_images)} hold-out images",
             f"qualities {cfg.quality_min}–{cfg.quality_max}", f"learning rate {lr_text(cfg.lr)}",
             f"created {when(job.status.get('created'))}"]
    if p["state"] == "finished" and job.status.get("started") and job.status.get("finished"):
        facts.append(f"took {duration(job.status['finished'] - job.status['started'])}")
    st.caption(" · ".join(facts))
    progress_view(job, p)
    if p["state"] == "finished":
        result_view(job)
        st.markdown("**Training**")
    if p["records"]:
        st.plotly_chart(curves(p["records"], job.id), key="ft_curves", config={"displaylogo": False})
    elif p["state"] in jobs.ACTIVE:
        st.caption("The curves appear with the first training steps.")


# -- the job list ---------------------------------------------------------------------------

def _act(action: str, job_id: str) -> None:
    """Button callback: cancel, resume, delete or show a job (runs before the rerun draws the page)."""
    st.session_state.pop(FLASH_KEY, None)
    if action == "show":
        st.session_state[JOB_KEY] = job_id
        return
    try:
        job = jobs.load_job(job_id)
        if action == "cancel":
            jobs.cancel(job, wait=0)
        elif action == "resume":
            jobs.resume(job)
            st.session_state[JOB_KEY] = job_id
        elif action == "delete":
            jobs.delete(job)
            if st.session_state.get(JOB_KEY) == job_id:
                st.session_state.pop(JOB_KEY)
    except jobs.JobError as e:
        st.session_state[FLASH_KEY] = f"Could not {action} the job: {shared.md_escape(str(e))}."
    except OSError as e:
        st.session_state[FLASH_KEY] = f"Could not {action} the job ({shared.md_escape(str(e))})."


def job_list(all_jobs: list[jobs.Job], shown: str | None) -> None:
    """One row per job with its actions (a resumed or cancelled job reruns the page: see `jobs_section`)."""
    st.subheader("All jobs")
    st.caption("Jobs run in their own processes: they keep going when you close this tab, and are listed here "
               "again after the app restarts.")
    for job in all_jobs[:MAX_LISTED]:
        p_step = (job.log() or [{"step": 0}])[-1]["step"] if job.state != "queued" else 0
        name_col, state_col, step_col, time_col, show_col, resume_col, delete_col = st.columns(
            [4, 2, 2, 2, 1.3, 1.4, 1.3], vertical_alignment="center")
        name_col.markdown(f"**{shared.md_escape(job.config.out)}** · from {shared.md_escape(job.config.base)}")
        with state_col:
            badge(job.state)
        step_col.caption(f"{p_step} / {count(job.config.steps, 'step')}")
        time_col.caption(when(job.status.get("created")))
        show_col.button("Show", key=f"ft_show_{job.id}", icon=":material/visibility:", type="tertiary",
                        disabled=job.id == shown, on_click=_act, args=("show", job.id))
        resume_col.button("Resume", key=f"ft_resume_{job.id}", icon=":material/replay:", type="tertiary",
                          disabled=not job.resumable, on_click=_act, args=("resume", job.id),
                          help="Continue from the last checkpoint.")
        delete_col.button("Delete", key=f"ft_delete_{job.id}", icon=":material/delete:", type="tertiary",
                          disabled=job.state == "running", on_click=_act, args=("delete", job.id),
                          help="Removes the job's folder (images, log, checkpoint); its weights stay.")
    if len(all_jobs) > MAX_LISTED:
        st.caption(f"And {len(all_jobs) - MAX_LISTED} older jobs.")


def jobs_section(active_ids: frozenset) -> None:
    """The jobs, live: refreshed every REFRESH_SECONDS while one is active (see `main`)."""
    all_jobs = jobs.list_jobs()
    if frozenset(j.id for j in all_jobs if j.state in jobs.ACTIVE) != active_ids:
        st.rerun()  # a job started, finished or stopped: the whole page catches up (model picker, timer)
    show_flash()
    if not all_jobs:
        st.caption("No fine-tuning jobs yet.")
        return
    by_id = {j.id: j for j in all_jobs}
    shown = st.session_state.get(JOB_KEY)
    if shown not in by_id:
        shown = next((j.id for j in all_jobs if j.state in jobs.ACTIVE), all_jobs[0].id)
    with st.container(border=True):
        try:
            job_view(by_id[shown])
        except Exception as e:  # noqa: BLE001  (a damaged job folder: a message, never a traceback)
            st.error(f"Cannot show job {shared.md_escape(shown)}: {shared.md_escape(str(e))}. Its folder may be damaged; "
                     "delete it below.", icon=":material/error:")
    job_list(all_jobs, shown)


# -- weights from a file --------------------------------------------------------------------

def upload_weights(making: set[str]) -> None:
    with st.expander("Add weights from files", icon=":material/upload_file:"):
        st.caption("Weights downloaded from this page or saved by `python -m aecore train`: the `.safetensors` "
                   "file and its `.json` model card, both. Only safetensors are read, never pickles, and every "
                   "tensor's shape is checked against the card's architecture before anything is saved.")
        files = st.file_uploader("Weights and model card", type=["safetensors", "json"], accept_multiple_files=True,
                                 key="ft_upload_weights")
        tensors = [f for f in files or [] if f.name.lower().endswith(".safetensors")]
        cards = [f for f in files or [] if f.name.lower().endswith(".json")]
        seen = tuple(f.file_id for f in files or [])
        if tensors and st.session_state.get("ft_upload_seen") != seen:
            st.session_state["ft_upload_seen"] = seen  # new files: suggest a name from them
            stem = tensors[0].name.rsplit(".", 1)[0]
            st.session_state.pop("ft_upload_done", None)
            st.session_state["ft_upload_name"] = weights.suggest_name(stem, making, own=True)
        done = st.session_state.get("ft_upload_done")
        if done:
            st.success(f"Added **{shared.md_escape(done)}**: it is in the model picker of every page.",
                       icon=":material/check_circle:")
            return
        if len(tensors) != 1 or len(cards) != 1:
            if files:
                st.info("Add exactly one `.safetensors` file and one `.json` card.", icon=":material/info:")
            return
        name = st.text_input("Name in the model picker", key="ft_upload_name", max_chars=64).strip()
        try:
            weights.check_new_name(name, making=making)
            problem = None
        except weights.WeightsError as e:
            problem = str(e)
            st.error(f"{shared.md_escape(problem[0].upper() + problem[1:])}.", icon=":material/edit:")
        if st.button("Add to the model picker", key="ft_upload_add", icon=":material/add:", disabled=bool(problem)):
            try:
                weights.import_weights(tensors[0].getvalue(), cards[0].getvalue(), name)
            except weights.WeightsError as e:
                st.error(f"These files cannot be used: {shared.md_escape(str(e))}.", icon=":material/error:")
                return
            except OSError as e:
                st.error(f"Could not save the weights ({shared.md_escape(str(e))}).", icon=":material/error:")
                return
            st.session_state["ft_upload_done"] = name
            st.rerun()  # the sidebar was drawn before: show the new weights there


def main() -> None:
    st.title("Fine-tune")
    st.caption("Teach the codec your kind of pictures: it trains on your images in the background, then shows "
               "how many bits it saves on images it did not train on.")
    models = shared.learned_models()
    try:
        all_jobs = jobs.list_jobs()
    except OSError as e:
        st.error(f"Cannot read the jobs folder ({shared.md_escape(str(e))}).", icon=":material/error:")
        return
    if models:
        new_job_form(models, all_jobs)
    else:
        st.info("No learned weights are installed yet, so there is nothing to fine-tune. Trained weights appear "
                "here as soon as they are saved, or add some from files below.", icon=":material/hourglass_empty:")
    active = frozenset(j.id for j in all_jobs if j.state in jobs.ACTIVE)
    st.fragment(jobs_section, run_every=REFRESH_SECONDS if active else None)(active)
    upload_weights(jobs.making(all_jobs))


main()
