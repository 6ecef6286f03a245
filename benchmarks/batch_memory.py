"""Batch compression of 12 MP photos, as a user runs it: wall time and peak memory.

    python benchmarks/batch_memory.py [KODAK_DIR] [--photos 4] [--codec hyperprior]
                                      # writes benchmarks/results/batch_memory.json

Builds a folder of `--photos` 4000x3000 photos in a temporary folder (Kodak photos cropped
to 4:3 and upscaled with Lanczos, then given mild noise so they are not unnaturally smooth),
then runs `python -m aecore compress FOLDER --out-dir OUT` as a whole process, once plain and
once with `--target-size 500KB`, with the default two workers. Peak memory is measured on the
whole process tree: the largest resident set of the main process and of any worker
(ru_maxrss from wait4, which Linux takes over the process and its descendants), and the tree's
sum, sampled every 0.2 s from /proc (the workers' peaks need not coincide).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import threading
import time

ROOT = Path(__file__).resolve().parent.parent
SIZE = (4000, 3000)


def make_photos(kodak: Path, folder: Path, count: int) -> list[Path]:
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    paths = []
    for src in sorted(p for p in kodak.iterdir() if p.suffix.lower() == ".png")[:count]:
        img = Image.open(src).convert("RGB")
        w, h = img.size
        if w < h:
            img = img.rotate(90, expand=True)
            w, h = img.size
        crop = img.crop((0, 0, min(w, h * 4 // 3), h)).resize(SIZE, Image.LANCZOS)
        pixels = np.asarray(crop).astype(np.int16) + rng.integers(-3, 4, (SIZE[1], SIZE[0], 3), dtype=np.int16)
        path = folder / f"{src.stem}-12mp.png"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, compress_level=1)
        paths.append(path)
    return paths


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants now (0 once gone)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
        todo.extend(children.get(p, []))
    return total


def run(cmd: list[str], logs: Path) -> dict:
    t0 = time.perf_counter()
    with open(logs / "stdout", "w") as out, open(logs / "stderr", "w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.2)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)  # this run's own rusage: the largest of it and its workers
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    seconds = time.perf_counter() - t0
    return {"command": "python " + " ".join(cmd[1:]), "exit_code": proc.returncode,
            "wall_seconds": round(seconds, 1), "largest_process_mb": round(usage.ru_maxrss / 1024),
            "tree_peak_mb_sampled": round(peak[0] / 2 ** 20),
            "stdout_tail": (logs / "stdout").read_text()[-1500:], "stderr_tail": (logs / "stderr").read_text()[-600:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="?", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--codec", default="hyperprior")
    parser.add_argument("--target-size", default="500KB")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "batch_memory.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        photos = make_photos(Path(args.images), folder, args.photos)
        for extra in ([], ["--target-size", args.target_size]):
            out_dir = Path(tmp) / ("out-target" if extra else "out-plain")
            row = run([sys.executable, "-m", "aecore", "compress", str(folder), "--out-dir", str(out_dir),
                       "--codec", args.codec, *extra], Path(tmp))
            row["outputs"] = sorted((p.name, p.stat().st_size) for p in out_dir.rglob("*.aec"))
            rows.append(row)
            print(json.dumps(row), flush=True)
    doc = {"photos": len(photos), "size": list(SIZE), "codec": args.codec, "cpu_count": os.cpu_count(),
           "memory_total_mb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 20),
           "runs": rows}
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
