"""Load benchmark: patient-view with a full prefetch against a real uvicorn, with wrk.

    python -m benchmarks.load [--duration 15] [--out results.md]

Runs the OI-CDS service and a trivial FastAPI echo app (benchmarks/echo_app.py) back to back,
each with 1 and 2 uvicorn workers, at concurrency 1, 10 and 50, and prints req/s, p50 and p99
with the ratio to the echo app measured in the same run. Needs wrk (Debian package `wrk`).
Auth is off (demo mode); the service writes its JSON request log line as `oi-cds serve` does
(the echo app logs nothing); the machine's CPU speed drifts, so only the ratios mean anything.

With one worker, the server runs on one CPU and wrk on the others (``taskset``), as an EHR
calls from another machine: sharing a CPU, wrk's threads preempt the server at random and
inflate its tail (here p99 127 ms shared, 42 ms pinned, same code). Two workers need both
CPUs of a 2-CPU machine, so those rows are not pinned. ``--no-pin`` turns pinning off.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import big_record
from services.cds_hooks import logs
from services.cds_hooks.examples import patient_view_example
from tests.servers import bench_command, free_port, uvicorn_server

CONCURRENCY = (1, 10, 50)


def oi_child_body() -> dict[str, Any]:
    """The issue's OI child: the example patient's full prefetch (4 Conditions, 2 Observations)."""
    return patient_view_example()


def request_body() -> dict[str, Any]:
    """The example patient's full prefetch, padded with unrelated Conditions to ~19 KB."""
    body = patient_view_example()
    conditions = body["prefetch"]["conditions"]["entry"]
    for i in range(40):
        conditions.append(
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": f"other-{i}",
                    "clinicalStatus": {"coding": [{"code": "active"}]},
                    "code": {
                        "coding": [{"system": "http://hospital.example.org/problems", "code": f"P{i:04d}"}],
                        "text": "Other problem",
                    },
                    "subject": {"reference": "Patient/oi-type-iii-child"},
                    "onsetDateTime": "2020-01-01",
                }
            }
        )
    return body


def cpu_split(workers: int, pin: bool) -> tuple[list[str], list[str]]:
    """taskset prefixes (server, wrk): one worker on the first CPU, wrk on the rest."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or workers != 1 or len(cpus) < 2 or shutil.which("taskset") is None:
        return [], []
    rest = ",".join(str(c) for c in cpus[1:])
    return ["taskset", "-c", str(cpus[0])], ["taskset", "-c", rest]


def wrk(
    url: str, body_path: Path, connections: int, duration: int, prefix: list[str] | None = None
) -> dict[str, float]:
    script = body_path.with_suffix(".lua")
    script.write_text(
        f'local f = io.open("{body_path}", "rb")\nwrk.method = "POST"\nwrk.body = f:read("*a")\nf:close()\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    # one thread: wrk's loop drives 50 connections far faster than either app answers; a second
    # thread only takes CPU from the server (p99 88 ms with one thread, 258 ms with two, here)
    threads = 1
    out = subprocess.run(
        [
            *(prefix or []),
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        assert m, out
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed responses:\n{out}")
    return {"rps": rps, "p50": pct("50"), "p99": pct("99")}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument(
        "--body",
        choices=("oi-child", "big-non-oi"),
        default="oi-child",
        help="oi-child: a 5 KB OI child, full prefetch; big-non-oi: an adult without OI, 300+ KB",
    )
    parser.add_argument(
        "--echo",
        choices=("orjson", "json"),
        default="orjson",
        help="baseline: orjson parse + small fixed answer (the target), or stdlib json echo",
    )
    parser.add_argument("--no-pin", action="store_true", help="one-worker rows: do not pin server and wrk")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also run the service with its clinical work taken out (benchmarks/fixed_answer.py)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.stderr.write("wrk is not installed (apt-get install wrk)\n")
        return 2
    worker_counts = [int(w) for w in args.workers.split(",")]
    results: dict[tuple[str, int, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        body_path = folder / "body.json"
        body_path.write_text(json.dumps(big_record.body() if args.body == "big-non-oi" else oi_child_body()))
        size = body_path.stat().st_size
        # the service logs as `oi-cds serve` does: one JSON line per request (to its log file)
        log_config = folder / "log-config.json"
        log_config.write_text(json.dumps(logs.configure()))
        echo = "benchmarks.echo_orjson:app" if args.echo == "orjson" else "benchmarks.echo_app:app"
        apps = {"echo": echo, "oi-cds": "--factory services.cds_hooks.main:create_app"}
        if args.floor:
            apps["floor"] = "--factory benchmarks.fixed_answer:create_app"
        for workers in worker_counts:
            for name, app in apps.items():
                port = free_port()
                pin_server, pin_wrk = cpu_split(workers, not args.no_pin)
                full = [*pin_server, *bench_command(port, workers, app)]
                if name != "echo":
                    full += ["--log-config", str(log_config)]
                # cap and loop-lag limit raised: this measures capacity, every call admitted
                # (benchmarks.shed: shedding); with 50 big bodies queued, the loop lags past the
                # default 0.25 s and some calls were shed, which failed a row
                env = {
                    "OI_CDS_DEMO": "true",
                    "OI_CDS_DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite3'}",
                    "OI_CDS_MAX_CONCURRENT_HOOKS": "100000",
                    "OI_CDS_SHED_LOOP_LAG_S": "1000",
                }
                with uvicorn_server(full, port, folder / f"{name}-{workers}.log", env) as base:
                    url = f"{base}/cds-services/oi-management"
                    wrk(url, body_path, 10, 2, pin_wrk)  # warm up
                    for connections in CONCURRENCY:
                        results[(name, workers, connections)] = wrk(
                            url, body_path, connections, args.duration, pin_wrk
                        )
    lines = [
        f"Request body: {args.body}, {size} bytes (patient-view, full prefetch); baseline: {args.echo} echo. "
        f"wrk, {args.duration} s per row; 1 worker: "
        + ("server and wrk on separate CPUs." if cpu_split(1, not args.no_pin)[0] else "not pinned."),
        "",
        "| workers | concurrency | echo req/s | oi-cds req/s | ratio "
        "| echo p50 / p99 (ms) | oi-cds p50 / p99 (ms) |"
        + (" floor req/s | floor ratio |" if args.floor else ""),
        "|---|---|---|---|---|---|---|" + ("---|---|" if args.floor else ""),
    ]
    for workers in worker_counts:
        for c in CONCURRENCY:
            e, o = results[("echo", workers, c)], results[("oi-cds", workers, c)]
            floor = results.get(("floor", workers, c))
            lines.append(
                f"| {workers} | {c} | {e['rps']:.0f} | {o['rps']:.0f} | {o['rps'] / e['rps']:.2f} | "
                f"{e['p50']:.2f} / {e['p99']:.2f} | {o['p50']:.2f} / {o['p99']:.2f} |"
                + (f" {floor['rps']:.0f} | {floor['rps'] / e['rps']:.2f} |" if floor else "")
            )
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
