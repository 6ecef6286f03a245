"""Load: simulated users on the Compare page at once, latency, errors, memory, isolation.

    python benchmarks/load.py                          # 4 users for 60 s -> benchmarks/results/load.json
    python benchmarks/load.py --users 8 --seconds 120
    python benchmarks/load.py --tiny                   # tiny random weights: checks the harness in seconds

Each user is a thread driving its own Streamlit session of the app (`AppTest`), all in
this one process, as on a server: the sessions share the process's caches
(`st.cache_resource` models, `st.cache_data` results) and its CPU. A user repeatedly
either picks a sample photo or uploads an image of its own (a random crop of a sample,
so a cache never answers it), at a random quality, and waits for the page to finish.
Latency is one page run as the server computes it (decode, both codecs, metrics, the
slider's PNGs), without the browser's share; errors are exceptions or `st.error`s.

Isolation: after every run a user checks that the page shows its own image (name and
size), and at the end its last result is recomputed directly with `aecore` (the learned
stream's size and PSNR for its own pixels and quality) and compared with what its page
shows. Any difference is counted under "isolation" and fails the run (exit code 1).

Model: `--weights NAME` if given; else the default model when installed; else a randomly
initialised model of the default architecture (same size and speed as the trained one,
not its quality), saved to a temporary user-weights folder.
"""
from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
from pathlib import Path
import platform
import random
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MAX_USERS = 16
MAX_SECONDS = 600


def allow_concurrent_apptests() -> None:
    """Lets AppTest sessions run at the same time in threads, as a Streamlit server's do.

    AppTest was written for one session at a time: each run installs a mock Runtime as
    the process-wide singleton and removes it when it ends (so a run still going in
    another thread finds none: "Runtime hasn't been created!"), and it compiles the scripts
    anew on every run (Python 3.11's ast.parse is not thread-safe: "AST constructor
    recursion depth mismatch"). A server has one Runtime and compiles each script once.
    Here the last Runtime installed stays visible while another run is going, and
    compiling is serialized. Nothing of aecore or the pages is changed.
    """
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache

    last: dict = {}

    def current(cls):
        if cls._instance is not None:
            last["runtime"] = cls._instance
        return last.get("runtime")

    def instance(cls):
        runtime = current(cls)
        if runtime is None:
            raise RuntimeError("Runtime hasn't been created!")
        return runtime

    Runtime.instance = classmethod(instance)
    Runtime.exists = classmethod(lambda cls: current(cls) is not None)
    compile_lock = threading.Lock()
    get_bytecode = ScriptCache.get_bytecode

    def locked_get_bytecode(self, script_path):
        with compile_lock:
            return get_bytecode(self, script_path)

    ScriptCache.get_bytecode = locked_get_bytecode


def prepare_weights(name: str | None, tiny: bool) -> str:
    """The learned weights the sessions use (see the module docstring)."""
    from aecore import weights
    from aecore.models import ModelConfig, build_model

    if name:
        weights.check_name(name)
        if name not in weights.available():
            sys.exit(f"no weights named {name!r}; available: {', '.join(weights.available()) or 'none'}")
        return name
    if not tiny and weights.DEFAULT_MODEL in weights.available():
        return weights.DEFAULT_MODEL
    folder = Path(tempfile.mkdtemp(prefix="aecore-load-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["AECORE_USER_WEIGHTS"] = str(folder)
    config = ModelConfig(channels=8, latent_channels=12) if tiny else ModelConfig()
    name = "load-tiny" if tiny else "load-random"
    weights.save(build_model(config).eval(), name, folder, {"label": f"{name} (random weights)"})
    return name


def direct_result(pixels, model: str, quality: float) -> dict:
    """What the page must show for these pixels, computed without Streamlit."""
    from aecore.codecs import get_codec
    from aecore.metrics import psnr

    codec = get_codec(model)
    data = codec.encode(pixels, quality)
    return {"bytes": len(data), "psnr": round(psnr(pixels, codec.decode(data)), 2)}


def shown_result(at) -> dict:
    """The learned codec's numbers in the page's table (its first column)."""
    table = at.table[0].value
    column = table.columns[0]
    return {"bytes": int(table.loc["Size (bytes)", column].replace(",", "")),
            "psnr": round(float(table.loc["PSNR (dB)", column]), 2)}


def png(pixels) -> bytes:
    from aecore.io import to_png_bytes
    return to_png_bytes(pixels)


class User(threading.Thread):
    """One simulated person: its own app session, its own images, its own record."""

    def __init__(self, index: int, model: str, deadline: float, samples: dict):
        super().__init__(name=f"user-{index}", daemon=True)
        self.index, self.model, self.deadline, self.samples = index, model, deadline, samples
        self.rng = random.Random(index)
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.isolation: list[str] = []
        self.last = None  # (pixels, quality) of the last finished run

    def run(self) -> None:
        from streamlit.testing.v1 import AppTest

        try:
            at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
            at.session_state["model"] = self.model
            at.run()
            uploaded = False
            while time.time() < self.deadline:
                name, pixels = self.pick()
                quality = round(self.rng.uniform(1.0, 8.0), 1)
                at.slider(key="quality").set_value(quality)
                if name.startswith("upload"):
                    at.file_uploader(key="upload").set_value((name, png(pixels), "image/png"))
                    uploaded = True
                else:
                    if uploaded:  # remove the upload (a run of its own), so the sample picker is enabled
                        at.file_uploader(key="upload").set_value(None)
                        at.run()
                        uploaded = False
                        if at.exception:
                            self.errors.append(f"exception: {at.exception[0].message}")
                    at.selectbox(key="sample").set_value(name)
                start = time.perf_counter()
                at.run()
                self.latencies.append(time.perf_counter() - start)
                self.check(at, name, pixels, quality)
            if self.last is not None:
                pixels, quality = self.last
                if shown_result(at) != direct_result(pixels, self.model, quality):
                    self.isolation.append(f"{self.name}: the page's numbers are not those of its own image")
        except Exception as e:  # noqa: BLE001  (the harness itself failed: report it, do not hang)
            self.errors.append(f"harness: {type(e).__name__}: {e}")

    def pick(self):
        sample = self.rng.choice(list(self.samples))
        if self.rng.random() < 0.5:
            return sample, self.samples[sample]
        pixels = self.samples[sample]
        h, w = pixels.shape[:2]
        ch, cw = self.rng.randint(h // 3, h), self.rng.randint(w // 3, w)
        y, x = self.rng.randint(0, h - ch), self.rng.randint(0, w - cw)
        return f"upload-u{self.index}-{len(self.latencies)}.png", pixels[y:y + ch, x:x + cw].copy()

    def check(self, at, name, pixels, quality) -> None:
        if at.exception:
            self.errors.append(f"exception: {at.exception[0].message}")
            return
        if at.error:
            self.errors.append(f"error: {at.error[0].value}")
            return
        point = at.session_state["operating_point"]
        h, w = pixels.shape[:2]
        if point["image"] != name or point["size"] != f"{w}x{h}" or point["quality"] != quality:
            self.isolation.append(f"{self.name}: asked for {name} {w}x{h} q{quality}, the page shows "
                                  f"{point['image']} {point['size']} q{point['quality']}")
        else:
            self.last = (pixels, quality)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=4, help=f"simulated users at once (1..{MAX_USERS})")
    parser.add_argument("--seconds", type=float, default=60, help=f"how long they keep going (max {MAX_SECONDS})")
    parser.add_argument("--weights", help="learned weights to use (default: see the module docstring)")
    parser.add_argument("--tiny", action="store_true", help="tiny random weights: a quick check of the harness")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "load.json"))
    args = parser.parse_args(argv)
    if not 1 <= args.users <= MAX_USERS or not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--users must be 1..{MAX_USERS} and --seconds 1..{MAX_SECONDS}")

    from aecore.io import sample_images
    from streamlit.runtime.scriptrunner_utils import script_run_context
    script_run_context._LOGGER.setLevel(logging.ERROR)  # "missing ScriptRunContext" for every user thread
    allow_concurrent_apptests()
    model = prepare_weights(args.weights, args.tiny)
    samples = sample_images()
    load_before = os.getloadavg()
    start = time.time()
    users = [User(i, model, start + args.seconds, samples) for i in range(args.users)]
    for u in users:
        u.start()
    for u in users:
        u.join(args.seconds + 600)
    wall = time.time() - start
    latencies = [t for u in users for t in u.latencies]
    errors = [e for u in users for e in u.errors]
    isolation = [e for u in users for e in u.isolation]
    result = {
        "command": "python benchmarks/load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": model, "users": args.users, "seconds": round(wall, 1),
        "page_runs": len(latencies), "runs_per_second": round(len(latencies) / wall, 2),
        "latency_ms": {"p50": round(percentile(latencies, 50) * 1000) if latencies else None,
                       "p95": round(percentile(latencies, 95) * 1000) if latencies else None,
                       "max": round(max(latencies) * 1000) if latencies else None,
                       "mean": round(statistics.mean(latencies) * 1000) if latencies else None},
        "errors": len(errors), "error_samples": errors[:5],
        "isolation_failures": len(isolation), "isolation_samples": isolation[:5],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_before": [round(v, 2) for v in load_before],
                    "load_average_after": [round(v, 2) for v in os.getloadavg()]},
        "what": "latency of one page run as the server computes it (no browser); peak RSS of the whole "
                "process: all sessions, the model, Streamlit and the libraries",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 1 if errors or isolation or not latencies else 0


if __name__ == "__main__":
    sys.exit(main())
