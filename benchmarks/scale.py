"""The bulk path at population scale (issue 15): both engines over synthetic exports of N patients.

    python -m benchmarks.scale --patients 10000 100000 1000000 --workdir /var/tmp/oi-cds-scale

For each N: the export is generated once (`benchmarks.synthetic_export`, kept in the workdir),
then `oi-cds plan --ndjson-dir` runs with the SQLite engine and with `--engine dask` (a local
cluster of `--workers` processes), one after the other. Recorded: wall time, patients/s, the
peak resident memory of the driver (GNU time's maximum RSS of the command) and of the largest
Dask worker (the engine reports it), and whether both engines wrote the same CarePlans and
OperationOutcomes. Results are appended to `scale.json` in the workdir and drawn as
`docs/img/scale.svg` (wall time against N, both engines, the population runs).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.synthetic_export import write_export

ROOT = Path(__file__).resolve().parent.parent


def _outputs(folder: Path) -> collections.Counter[str]:
    lines: collections.Counter[str] = collections.Counter()
    for path in folder.glob("*.ndjson"):
        lines.update(path.read_text().splitlines())
    return lines


def run_engine(export: Path, out: Path, engine: str, workers: int) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "services.cli", "plan", "--at", "2026-06-01"]
    command += ["--ndjson-dir", str(export), "--out", str(out), "--engine", engine]
    if engine == "dask":
        command += ["--workers", str(workers)]
    started = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    wall = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{run.stderr[-3000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr)
    worker = re.search(r"worker peak RSS (\d+) MB", run.stderr)
    # GNU time reports the largest of the process and its children: for dask, the driver's own
    # figure comes from the engine
    driver = re.search(r"driver peak RSS (\d+) MB", run.stderr)
    phases = re.search(r"dask: (.*)", run.stderr)
    summary = json.loads((out / "summary.json").read_text())
    return {
        "engine": engine,
        "wall_s": round(wall, 1),
        "patients_per_s": round(summary["patients"] / wall),
        "driver_peak_mb": int(driver.group(1))
        if driver
        else round(int(rss.group(1)) / 1024)
        if rss
        else None,
        "worker_peak_mb": int(worker.group(1)) if worker else None,
        "phases": phases.group(1) if phases else None,
        "planned": summary["planned"],
    }


def chart(results: list[dict[str, Any]]) -> str:
    """Wall time against N on log-log axes, one line per engine."""
    import math

    width, height, left, bottom, top, right = 660, 320, 60, 40, 30, 50
    ns = sorted({r["patients"] for r in results})
    times = [r["wall_s"] for r in results]
    x_lo, x_hi = math.log10(min(ns)), math.log10(max(ns)) + 1e-9
    y_lo, y_hi = math.log10(max(0.1, min(times)) / 1.5), math.log10(max(times) * 1.5)

    def xy(n: int, t: float) -> tuple[float, float]:
        x = left + (math.log10(n) - x_lo) / (x_hi - x_lo or 1) * (width - left - right)
        y = top + (1 - (math.log10(t) - y_lo) / (y_hi - y_lo)) * (height - top - bottom)
        return x, y

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" font-family="Helvetica" font-size="11">',
        f'<text x="{left}" y="18" font-size="13" font-weight="bold">oi-cds plan --ndjson-dir: wall time '
        "against patients (log-log, 2 cores)</text>",
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" '
        'stroke="#718096"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#718096"/>',
    ]
    for n in ns:
        x, _ = xy(n, 1)
        out.append(f'<text x="{x:.0f}" y="{height - bottom + 14}" text-anchor="middle">{n:,}</text>')
    for t in (1, 10, 100, 1000, 10000):
        if y_lo <= math.log10(t) <= y_hi:
            _, y = xy(ns[0], t)
            out.append(f'<text x="{left - 6}" y="{y + 4:.0f}" text-anchor="end">{t} s</text>')
            out.append(f'<line x1="{left}" y1="{y:.0f}" x2="{width - right}" y2="{y:.0f}" stroke="#e2e8f0"/>')
    for i, (engine, colour) in enumerate((("sqlite", "#2b6cb0"), ("dask", "#dd8a08"))):
        points = sorted((r["patients"], r["wall_s"]) for r in results if r["engine"] == engine)
        if not points:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(n, t) for n, t in points))
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for n, t in points:
            x, y = xy(n, t)
            out.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}" data-engine="{engine}" '
                f'data-patients="{n}" data-seconds="{t}"/>'
            )
        out.append(f'<rect x="{left + 10 + i * 120}" y="{top}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{left + 24 + i * 120}" y="{top + 9}">{engine}</text>')
    out.append("</svg>")
    return "".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+", required=True)
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/oi-cds-scale"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engines", nargs="+", default=["sqlite", "dask"])
    parser.add_argument(
        "--oi-rate", type=float, default=1 / 15_000, help="1 for a dense OI cohort (the vignettes, renamed)"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    log = args.workdir / "scale.json"
    results: list[dict[str, Any]] = json.loads(log.read_text()) if log.exists() else []
    for n in args.patients:
        cohort = "" if args.oi_rate == 1 / 15_000 else f"-oi{args.oi_rate:g}"
        export = args.workdir / f"export-{n}{cohort}"
        if not (export / "Patient.ndjson").exists():
            started = time.perf_counter()
            counts = write_export(export, n, args.oi_rate)
            print(f"generated {n}: {counts} in {time.perf_counter() - started:.0f} s", flush=True)
        size = sum(p.stat().st_size for p in export.glob("*.ndjson"))
        lines = sum(1 for p in export.glob("*.ndjson") for _ in p.open("rb"))
        outs = {}
        for engine in args.engines:
            out = args.workdir / f"out-{n}-{engine}"
            row = {
                "patients": n,
                "oi_rate": args.oi_rate,
                "resources": lines,
                "export_mb": round(size / 2**20),
                **run_engine(export, out, engine, args.workers),
            }
            print(json.dumps(row), flush=True)
            key = (n, engine, args.oi_rate)
            results = [
                r for r in results if (r["patients"], r["engine"], r.get("oi_rate", 1 / 15_000)) != key
            ] + [row]
            outs[engine] = out
        if len(outs) == 2:
            same = _outputs(outs["sqlite"]) == _outputs(outs["dask"])
            for r in results:
                if r["patients"] == n and r.get("oi_rate", 1 / 15_000) == args.oi_rate:
                    r["same_output"] = same
            print(f"{n}: same output from both engines: {same}", flush=True)
        for out in outs.values():
            shutil.rmtree(out, ignore_errors=True)
        log.write_text(json.dumps(results, indent=2))
        population = [r for r in results if r.get("oi_rate", 1 / 15_000) == 1 / 15_000]
        (ROOT / "docs" / "img" / "scale.svg").write_text(chart(population))


if __name__ == "__main__":
    main()
