"""Learning curves of training runs: validation bpp and PSNR per quality level against steps.

    python benchmarks/learning_curves.py ~/.cache/aecore/runs/hyperprior ~/.cache/aecore/runs/seed

Reads each run's log.jsonl (written by `python -m aecore train`), keeps the validation
records (fixed 256x256 crops of held-out training-set photos, never Kodak) and writes
benchmarks/results/learning_curves.csv and learning_curves.html. A run that continued
an earlier one (--init) counts its steps from zero; --offset NAME=STEPS shifts it.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
import sys

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def read_run(folder: Path, offset: int = 0) -> list[dict]:
    rows = []
    for line in (folder / "log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        for level, v in rec.get("val", {}).items():
            rows.append({"run": folder.name, "step": rec["step"] + offset, "level": level,
                         "bpp": v["bpp"], "psnr": v["psnr"], "hours": round(rec["seconds"] / 3600, 3)})
    return rows


def chart(rows: list[dict], path: Path) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("validation PSNR (dB)", "validation bpp"))
    for run in dict.fromkeys(r["run"] for r in rows):
        for level in dict.fromkeys(r["level"] for r in rows if r["run"] == run):
            pts = [r for r in rows if r["run"] == run and r["level"] == level]
            for col, metric in ((1, "psnr"), (2, "bpp")):
                fig.add_trace(go.Scatter(x=[p["step"] for p in pts], y=[p[metric] for p in pts],
                                         mode="lines+markers", name=f"{run} {level}", legendgroup=f"{run} {level}",
                                         showlegend=col == 1), row=1, col=col)
    fig.update_xaxes(title_text="training steps")
    fig.update_layout(title="Learning curves on held-out crops", template="plotly_white", height=480)
    fig.write_html(path, include_plotlyjs=True, full_html=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run folders holding log.jsonl")
    ap.add_argument("--offset", action="append", default=[], help="NAME=STEPS: steps before this run began")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    offsets = dict(o.split("=", 1) for o in args.offset)
    rows = []
    for run in args.runs:
        folder = Path(run).expanduser()
        if not (folder / "log.jsonl").is_file():
            ap.error(f"{folder}: no log.jsonl")
        rows += read_run(folder, int(offsets.get(folder.name, 0)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "learning_curves.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    chart(rows, out / "learning_curves.html")
    for run in dict.fromkeys(r["run"] for r in rows):
        last = max(r["step"] for r in rows if r["run"] == run)
        summary = ", ".join(f"{r['level']} {r['bpp']:.3f} bpp / {r['psnr']:.2f} dB"
                            for r in rows if r["run"] == run and r["step"] == last)
        print(f"{run} at step {last}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
