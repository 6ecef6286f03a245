"""The Dockerfile, checked where no container engine runs.

The image's `pip install` layer runs into a fresh virtual environment of the system's
Python 3 (the packages come from the configured index instead of PyTorch's CPU index, and
without compiling bytecode: two thirds of the install's time, and not what is checked here).
What `.dockerignore` lets into the build context is copied, root-owned, to a folder that
stands for /app. The image's CMD runs there as the image's unprivileged user, with the
image's ENV (/data mapped to a temporary folder). The image's own HEALTHCHECK command must
pass, a compression through the command line must work, and nothing may be written outside
/data and the user's home. Needs root, to switch users; skipped otherwise.
"""
import fnmatch
import json
import os
from pathlib import Path
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from aecore.io import save_png
from .test_browser import free_port

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not SYSTEM_PYTHON,
                                reason="needs root and setpriv (to switch users) and a system python3")


def dockerfile() -> dict:
    """ENV, USER, the user's uid, the pip install command, HEALTHCHECK and CMD of the Dockerfile."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    spec = {"env": {}}
    for line in lines:
        word, _, rest = line.partition(" ")
        if word == "ENV":
            spec["env"].update(part.split("=", 1) for part in shlex.split(rest))
        elif word == "USER":
            spec["user"] = rest.strip()
        elif word == "CMD":
            spec["cmd"] = json.loads(rest)
        elif word == "HEALTHCHECK":
            spec["healthcheck"] = json.loads(rest.split(" CMD ", 1)[1])
        elif word == "RUN" and "pip install" in rest:
            spec["install"] = rest
        elif word == "RUN" and "useradd" in rest:
            spec["uid"] = int(rest.split("--uid", 1)[1].split()[0])
    return spec


def build_context(dest: Path) -> list[str]:
    """Copies the tracked files that .dockerignore keeps, with the modes a fresh clone gives
    them (git keeps only the executable bit); returns their paths."""
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        return any(fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.removeprefix("**/"))
                   for pat in patterns for p in prefixes)

    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    kept = [f for f in files if not ignored(f) and (ROOT / f).is_file()]
    for f in kept:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / f, dest / f)
        (dest / f).chmod(0o755 if os.access(ROOT / f, os.X_OK) else 0o644)
    return kept


def snapshot(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")}


@pytest.fixture
def image_root():
    """A temporary folder the image's user can reach (pytest's own sit in a 0700 folder)."""
    with tempfile.TemporaryDirectory(prefix="aecore-image-") as folder:
        Path(folder).chmod(0o755)
        yield Path(folder)


def test_image_runs_as_its_user_passes_its_healthcheck_and_writes_only_data(image_root):
    spec = dockerfile()
    assert spec["user"] == "aecore" and spec["uid"] != 0
    app, data, home = image_root / "app", image_root / "data", image_root / "home"
    kept = build_context(app)
    assert {"streamlit_app.py", "requirements.txt", "weights/hyperprior.safetensors"} <= set(kept)
    assert not [f for f in kept if f.startswith(("tests/", "benchmarks/", ".git"))]
    for folder in (data / "weights", data / "jobs", home):
        folder.mkdir(parents=True)
    for folder in (data, data / "weights", data / "jobs", home):
        os.chown(folder, spec["uid"], spec["uid"])
    before = snapshot(app)

    venv = image_root / "venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True)
    install = spec["install"].replace("--index-url https://download.pytorch.org/whl/cpu", "")
    install = install.replace("pip install", "pip install --no-compile")
    install = install.replace("/tmp/", f"{image_root}/")  # the image's own /tmp, not the host's shared one
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", install], cwd=app, capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for test_only in ("pytest", "hypothesis", "playwright"):
        assert not list((venv / "lib").glob(f"python3*/site-packages/{test_only}")), test_only

    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(home),
           **{k: v.replace("/data", str(data)) for k, v in spec["env"].items()}}
    as_user = ["setpriv", f"--reuid={spec['uid']}", f"--regid={spec['uid']}", "--clear-groups", "--"]
    port = free_port()
    log = open(image_root / "streamlit.log", "w")
    server = subprocess.Popen(as_user + spec["cmd"] + ["--server.port", str(port), "--server.headless", "true",
                                                       "--browser.gatherUsageStats", "false"],
                              cwd=app, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        health = [a.replace("8501", str(port)) for a in spec["healthcheck"]]
        deadline, ok = time.monotonic() + 240, False  # a bound for a busy machine, not a speed check
        while time.monotonic() < deadline and server.poll() is None and not ok:
            ok = subprocess.run(as_user + health, cwd=app, env=env, capture_output=True).returncode == 0
            time.sleep(0.5)
        assert ok, (image_root / "streamlit.log").read_text()[-2000:]

        photo = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
        save_png(photo, data / "in.png")
        out = subprocess.run(as_user + ["python", "-m", "aecore", "compress", str(data / "in.png"),
                                        str(data / "out.aec"), "--codec", "seed", "--quality", "3"],
                             cwd=app, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["bytes"] == (data / "out.aec").stat().st_size
        assert (data / "out.aec").stat().st_uid == spec["uid"]
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
    assert snapshot(app) == before  # the code is read-only to the app: no caches, no bytecode
