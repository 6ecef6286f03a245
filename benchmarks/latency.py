"""Latency as a user meets it: whole command-line processes, timed from outside.

    python benchmarks/latency.py [KODAK_DIR] [--runs 5] [--page-runs 10]   # writes benchmarks/results/latency.json

Rows (issue 15's table): `python -m aecore compress kodim05.png` with the learned default
and with `--codec jpeg`; loading the `hyperprior` weights (in a fresh process that has
imported torch already, so the figure is the load alone); a 12 MP photo (kodim05 upscaled
to 4000x3000 with Lanczos) through `compress` with its metrics, with the process's peak RSS
(from wait4, so it is that child's own). Each row is run `--runs` times; best and median are
recorded. The page rows (benchmarks/page_latency.py) are measured in Chromium with Playwright:
p50 and p95 over `--page-runs` interactions, `--cold-runs` cold starts, `--rd-runs` sweeps. The machine's load average is recorded beside the figures: on a machine that
other work keeps busy the times are several times those of a quiet one.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

LOAD_ONLY = ("import time, torch\n"
             "from aecore import weights\n"
             "t = time.perf_counter(); weights.load('hyperprior')\n"
             "print((time.perf_counter() - t) * 1000)\n")


def timed_child(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MB) of one child, measured with os.wait4 (its own rusage)."""
    # A user's Python caches compiled modules (__pycache__); a machine that sets
    # PYTHONDONTWRITEBYTECODE would recompile aecore in every process (about 80 ms).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(args)} failed: {err.read().decode()[-500:]}")
        return wall, usage.ru_maxrss / 1024, out.read().decode()


def measure(args: list[str], runs: int, inner_ms: bool = False) -> dict:
    walls, peaks, inner = [], [], []
    timed_child(args)  # unmeasured: writes the bytecode caches and warms the page cache, as any earlier run has
    for _ in range(runs):
        wall, peak, out = timed_child(args)
        walls.append(wall)
        peaks.append(peak)
        if inner_ms:
            inner.append(float(out.strip().splitlines()[-1]) / 1000)
    row = {"best_s": round(min(walls), 3), "median_s": round(statistics.median(walls), 3),
           "peak_rss_mb": round(max(peaks)), "runs": runs}
    if inner_ms:
        row = {"best_s": round(min(inner), 3), "median_s": round(statistics.median(inner), 3),
               "process_best_s": row["best_s"], "runs": runs}
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kodak", nargs="?", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS / "latency.json"))
    parser.add_argument("--big-runs", type=int, default=2,
                        help="runs of the 12 MP rows: the command line's and the Compare page's upload "
                             "(default 2; 0 leaves them out)")
    parser.add_argument("--page-runs", type=int, default=10,
                        help="interactions per Compare page row in Chromium (default 10; 0 leaves the page rows out)")
    parser.add_argument("--cold-runs", type=int, default=10, help="app cold starts (default 10)")
    parser.add_argument("--rd-runs", type=int, default=10, help="Rate-distortion sweeps of new photos (default 10)")
    parser.add_argument("--cli-runs", type=int, default=None, help="runs of the command-line rows (default --runs; "
                        "0 leaves them out)")
    args = parser.parse_args(argv)
    source = Path(args.kodak) / "kodim05.png"
    if not source.exists():
        parser.error(f"{source}: not found (pass the Kodak folder)")
    py = sys.executable
    load_before = os.getloadavg()
    rows = {}
    cli_runs = args.runs if args.cli_runs is None else args.cli_runs
    with tempfile.TemporaryDirectory(prefix="aecore-latency-") as tmp:
        tmp = Path(tmp)
        cmd = [py, "-m", "aecore", "compress"]
        if cli_runs:
            rows["compress kodim05 (hyperprior)"] = {
                "command": "python -m aecore compress kodim05.png a.aec",
                **measure([*cmd, str(source), str(tmp / "a.aec")], cli_runs)}
            rows["compress kodim05 (jpeg)"] = {
                "command": "python -m aecore compress kodim05.png a.jpg --codec jpeg",
                **measure([*cmd, str(source), str(tmp / "a.jpg"), "--codec", "jpeg"], cli_runs)}
            rows["load hyperprior weights"] = {
                "command": "weights.load('hyperprior') in a fresh process with torch imported",
                **measure([py, "-c", LOAD_ONLY], cli_runs, inner_ms=True)}
        if cli_runs and args.big_runs:
            from PIL import Image
            Image.open(source).convert("RGB").resize((4000, 3000), Image.LANCZOS).save(tmp / "big.png")
            rows["compress 12 MP (hyperprior)"] = {
                "command": "python -m aecore compress big.png a.aec  (4000x3000)",
                **measure([*cmd, str(tmp / "big.png"), str(tmp / "b.aec")], args.big_runs)}
    if args.page_runs:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import page_latency
        loads = [os.getloadavg()[0]]

        def progress(line: str) -> None:
            loads.append(os.getloadavg()[0])
            print(f"{line} (load {loads[-1]:.1f})", file=sys.stderr, flush=True)

        for name, row in page_latency.measure(Path(args.kodak), args.page_runs, args.cold_runs, args.rd_runs,
                                              progress, args.big_runs).items():
            rows[name] = {"command": "python benchmarks/latency.py (Chromium, Playwright)", **row}
        rows_load = {"page_rows_load_average_1min": {"min": round(min(loads), 2), "max": round(max(loads), 2)}}
    else:
        rows_load = {}
    sys.path.insert(0, str(ROOT))
    from aecore.models.precision import cpu_facts  # torch, imported once the timings are done
    result = {"rows": rows, **rows_load, "load_average_before": [round(v, 2) for v in load_before],
              "load_average_after": [round(v, 2) for v in os.getloadavg()], "cpus": os.cpu_count(),
              "cpu": cpu_facts(),
              "python": sys.version.split()[0],
              "note": "whole processes timed from outside; a busy machine (load average above the "
                      "core count) makes every figure several times slower than a quiet one"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
