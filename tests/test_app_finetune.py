"""The Fine-tune page through AppTest: form, live name checks, a job from start to result, the job list.

Tiny user weights only (the shipped folder is pointed elsewhere), jobs in a temporary
folder, and four small crops standing in for the sample photos. The page's Start button
creates and queues a real job; the background worker is not spawned (`jobs.schedule._spawn` is
replaced), so the test runs the job itself with `jobs.run`, in this process, and looks
at the page while it trains and after it has finished.
"""
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from aecore import jobs, weights

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
PAGE = "pages/fine_tune.py"


def crops() -> dict[str, np.ndarray]:
    from skimage import data
    return {"Cat": np.ascontiguousarray(data.chelsea()[100:196, 150:278]),
            "Astronaut": np.ascontiguousarray(data.astronaut()[120:216, 180:308]),
            "Coffee": np.ascontiguousarray(data.coffee()[150:246, 200:328]),
            "Camera": np.ascontiguousarray(data.camera()[200:296, 200:328])}  # grayscale


@pytest.fixture
def spawned(user_weights, tmp_path, monkeypatch) -> list:
    """Jobs dir in tmp_path; workers that the page would spawn are recorded instead."""
    monkeypatch.setenv("AECORE_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("AECORE_MAX_JOBS", "1")
    monkeypatch.setattr(weights, "SHIPPED_DIR", tmp_path / "no_shipped_weights")
    monkeypatch.setattr("aecore.io.sample_images", crops)  # read by the page at run time
    calls = []
    monkeypatch.setattr(jobs.schedule, "_spawn", lambda job: calls.append(job.id))  # stays queued: the test runs it
    return calls


@pytest.fixture
def app(spawned) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["model"] = "tiny-hyper"
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def fill(at: AppTest, name: str, steps: int = 4) -> AppTest:
    """Samples, a few steps of 2 crops of 64 px: a job of a few seconds."""
    at.checkbox(key="ft_use_samples").check().run()
    at.text_input(key="ft_name").set_value(name).run()
    at.number_input(key="ft_steps").set_value(steps).run()
    at.select_slider(key="ft_crop").set_value(64).run()
    at.number_input(key="ft_batch").set_value(2).run()
    assert not at.exception, at.exception
    return at


def picker_options(at: AppTest) -> list[str]:
    """The labels in the sidebar's model picker (AppTest shows the sidebar on a session's first run only)."""
    return at.sidebar.selectbox(key="model").options


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def progress_texts(at: AppTest) -> str:
    return "\n".join(p.proto.text for p in at.get("progress"))


def test_page_renders_with_an_estimate(app):
    assert app.title[0].value == "Fine-tune"
    assert "Upload at least two images" in texts(app.info)
    assert app.button(key="ft_start").disabled
    assert app.selectbox(key="ft_base").value == "tiny-hyper"
    name = app.text_input(key="ft_name")
    assert name.value == "" and name.proto.placeholder == "tiny-hyper-ft"  # empty: the suggestion
    assert app.number_input(key="ft_steps").value == 200
    assert app.number_input(key="ft_holdout").value is None  # automatic

    app.checkbox(key="ft_use_samples").check().run()  # four 96x128 crops: smaller than the 128 px crop
    assert not app.exception and app.button(key="ft_start").disabled
    assert "at least 2 images of at least 128x128 px" in app.error[0].value
    assert "Left out (4 images" in app.warning[0].value and "128x96 px is smaller than the 128 px" in app.warning[0].value
    app.select_slider(key="ft_crop").set_value(64).run()
    assert not app.exception and not app.error and not app.warning
    estimate = texts(app.info)
    assert "on this machine" in estimate and "200 steps" in estimate and "1 hold-out image " in estimate
    assert app.file_uploader(key="ft_files").disabled and not app.button(key="ft_start").disabled
    expected = jobs.estimate_seconds(jobs.JobConfig(base="tiny-hyper", out="x", crop=64,
                                                    quality_max=weights.meta_model("tiny-hyper").levels), 4,
                                     96 * 128 / 1e6)
    minutes, seconds = divmod(round(expected), 60)
    assert f"About {minutes} min {seconds:02d} s" in estimate

    app.number_input(key="ft_holdout").set_value(2).run()
    assert "2 hold-out images" in texts(app.info) and texts(app.info) != estimate
    app.number_input(key="ft_steps").set_value(400).run()
    assert "400 steps" in texts(app.info)


def test_one_step_is_one_step(app):
    fill(app, "one-step", steps=1)
    assert "1 step of 2 crops" in texts(app.info) and "1 steps" not in texts(app.info)
    app.button(key="ft_start").click().run()
    assert not app.exception
    [job] = jobs.list_jobs()
    shown = texts(app.caption)
    assert "· 1 step ·" in shown and "0 / 1 step" in shown and "1 steps" not in shown


def test_an_empty_name_takes_the_suggestion_of_the_chosen_base(app):
    fill(app, "")
    app.selectbox(key="ft_base").set_value("tiny-seed").run()
    assert app.text_input(key="ft_name").proto.placeholder == "tiny-seed-ft"
    app.button(key="ft_start").click().run()
    assert not app.exception and not app.error
    [job] = jobs.list_jobs()
    assert job.config.base == "tiny-seed" and job.config.out == "tiny-seed-ft"
    assert app.text_input(key="ft_name").proto.placeholder == "tiny-seed-ft2"  # taken by the queued job


def test_settings_survive_a_page_switch(app):
    fill(app, "kept-name", steps=30)
    app.switch_page("pages/compare.py").run()
    app.switch_page(PAGE).run()
    assert not app.exception
    assert app.checkbox(key="ft_use_samples").value and app.text_input(key="ft_name").value == "kept-name"
    assert app.number_input(key="ft_steps").value == 30 and app.select_slider(key="ft_crop").value == 64


def test_steps_are_bounded_by_the_server_limit(spawned, monkeypatch):
    monkeypatch.setenv("AECORE_MAX_STEPS", "50")
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["model"] = "tiny-hyper"
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.number_input(key="ft_steps").proto.max == 50


@pytest.mark.parametrize("name, message", [
    ("bad name!", "cannot be a weights name"),
    ("-dash-first", "cannot be a weights name"),
    ("jpeg", "shipped weights or of a codec"),
    ("hyperprior", "shipped weights or of a codec"),
    ("tiny-seed", "exist already"),
    ("tiny-hyper", "other than the base"),
])
def test_bad_names_are_refused_live(app, name, message):
    fill(app, name)
    assert app.error and message in app.error[0].value
    assert app.button(key="ft_start").disabled
    app.text_input(key="ft_name").set_value("my_photos-2").run()
    assert not app.error and not app.button(key="ft_start").disabled


def test_a_job_from_start_to_result(app, spawned, user_weights):
    fill(app, "ft-app")
    app.button(key="ft_start").click().run()
    assert not app.exception and not app.error
    [job] = jobs.list_jobs()
    assert spawned and spawned[-1] == job.id
    assert job.state == "queued" and job.config.out == "ft-app" and job.config.steps == 4
    assert job.config.crop == 64 and len(job.train_images) == 3 and len(job.holdout_images) == 1
    assert "Queued: number 1 in line" in progress_texts(app)
    assert app.button(key="ft_cancel") and app.button(key=f"ft_resume_{job.id}").disabled
    assert app.text_input(key="ft_name").value == ""  # the next job starts from a fresh suggestion

    seen = {}

    def look(phase, done, total, info):
        if phase == "training" and done == 2 and not seen:
            app.run()  # the page while the job trains
            seen.update(exception=list(app.exception), progress=progress_texts(app),
                        charts=len(app.get("plotly_chart")), cancel=bool(app.button(key="ft_cancel")),
                        delete_disabled=app.button(key=f"ft_delete_{job.id}").disabled)

    assert jobs.run(job, progress=look).state == "finished", job.error
    assert not seen["exception"] and "Step 2 of 4" in seen["progress"] and "steps/s" in seen["progress"]
    assert "left" in seen["progress"] and seen["charts"] == 1 and seen["cancel"] and seen["delete_disabled"]

    app.run()
    assert not app.exception and not app.error
    bd = app.table[1].value
    assert list(bd.index) == ["Same PSNR", "Same MS-SSIM"]
    result = job.result()
    shown = "no overlap" if result["bd_rate"] is None else f"{result['bd_rate']:+.1f}%"
    assert bd.loc["Same PSNR", "BD-rate"] == shown
    rd = app.table[0].value
    assert list(rd.index) == ["1", "3", "5", "8"] and "PSNR after (dB)" in rd.columns
    assert len(app.get("plotly_chart")) == 2  # training curves, before/after RD
    assert {"ft_download_weights", "ft_download_card"} <= {b.key for b in app.download_button}
    assert not app.button(key=f"ft_delete_{job.id}").disabled

    again = AppTest.from_file(APP, default_timeout=60)  # an app restart: the job is read from its folder
    again.run()
    assert "ft-app (fine-tuned from tiny-hyper)" in picker_options(again)
    again.switch_page(PAGE).run()
    assert not again.exception and again.table[1].value.loc["Same PSNR", "BD-rate"] == shown
    again.button(key="ft_open_compare").click().run()
    assert not again.exception and again.title[0].value == "Learned codec vs JPEG"
    assert again.session_state["model"] == "ft-app"


def test_cancel_resume_and_delete(app):
    fill(app, "ft-stop").button(key="ft_start").click().run()
    [job] = jobs.list_jobs()
    app.button(key="ft_cancel").click().run()
    assert not app.exception and job.reload().state == "cancelled"
    assert "Cancelled at step 0 of 4" in texts(app.warning)
    assert not app.button(key=f"ft_resume_{job.id}").disabled

    app.button(key=f"ft_resume_{job.id}").click().run()
    assert not app.exception and job.reload().state == "queued"
    app.button(key="ft_cancel").click().run()
    app.button(key=f"ft_delete_{job.id}").click().run()
    assert not app.exception and jobs.list_jobs() == []
    assert "No fine-tuning jobs yet" in texts(app.caption)


def test_a_failed_job_says_why_and_can_be_resumed(app, user_weights):
    fill(app, "ft-broken").button(key="ft_start").click().run()
    [job] = jobs.list_jobs()
    for path in user_weights.glob("tiny-hyper.*"):  # the base disappears before the job runs
        path.unlink()
    assert jobs.run(job).state == "failed"
    app.run()
    assert not app.exception
    assert "This job failed" in app.error[0].value and "tiny-hyper" in app.error[0].value
    assert not app.button(key=f"ft_resume_{job.id}").disabled


def test_weights_round_trip_through_upload(app, user_weights):
    tensors = (user_weights / "tiny-seed.safetensors").read_bytes()
    card = (user_weights / "tiny-seed.json").read_bytes()
    uploader = app.file_uploader(key="ft_upload_weights")
    uploader.set_value([("tiny-seed.safetensors", tensors, "application/octet-stream"),
                        ("tiny-seed.json", card, "application/json")]).run()
    assert not app.exception
    assert app.text_input(key="ft_upload_name").value == "tiny-seed-ft"  # its own name is taken
    app.text_input(key="ft_upload_name").set_value("seed-copy").run()
    app.button(key="ft_upload_add").click().run()
    assert not app.exception and not app.error
    assert "seed-copy (imported from tiny-seed)" in picker_options(AppTest.from_file(APP, default_timeout=60).run())
    assert "Added **seed-copy**" in texts(app.success)
    assert (user_weights / "seed-copy.safetensors").read_bytes() == tensors

    pickled = io.BytesIO()
    torch.save({"w": torch.zeros(3)}, pickled)
    app.file_uploader(key="ft_upload_weights").set_value(
        [("evil.safetensors", pickled.getvalue(), "application/octet-stream"),
         ("evil.json", card, "application/json")]).run()
    assert app.text_input(key="ft_upload_name").value == "evil"
    app.button(key="ft_upload_add").click().run()
    assert not app.exception and "not a safetensors file" in app.error[0].value
    assert "evil" not in weights.available()


def test_a_damaged_job_folder_gives_a_message(app):
    fill(app, "ft-damaged").button(key="ft_start").click().run()
    [job] = jobs.list_jobs()
    status = json.loads((job.dir / "status.json").read_text())
    (job.dir / "status.json").write_text(json.dumps({**status, "state": "finished"}))
    (job.dir / "result.json").write_text("{half a file")
    app.run()
    assert not app.exception
    assert "Cannot show job" in app.error[0].value and not app.button(key=f"ft_delete_{job.id}").disabled
