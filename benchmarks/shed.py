"""Overload: latency with load shedding, against the same service without, same run.

    python -m benchmarks.shed [--duration 15] [--connections 300]

wrk keeps `connections` patient-view calls (auth off, full prefetch: calls that never await)
in flight against 1 uvicorn worker, while a probe calls /healthz every 0.2 s with a 2 s
timeout: once with the defaults (OI_CDS_MAX_CONCURRENT_HOOKS=32, OI_CDS_SHED_LOOP_LAG_S=0.25),
once with both out of reach. Without shedding every call queues inside the event loop and the
tail grows with the queue; with it the excess is answered 503 + Retry-After at once. wrk
reports one latency distribution for all responses.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from benchmarks.load import request_body
from tests.servers import bench_command, free_port, uvicorn_server


def _probe(port: int, probes: list[bool], stop: threading.Event) -> None:
    """/healthz every 0.2 s on a new connection, as an orchestrator's probe does (raw socket:
    the probe itself must not compete for the CPU it measures)."""
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
                probes.append(sock.recv(64).startswith(b"HTTP/1.1 200"))
        except OSError:
            probes.append(False)
        stop.wait(0.2)


def _missed(probes: list[bool]) -> str:
    missed = [str(i + 1) for i, ok in enumerate(probes) if not ok]
    return f" (missed: probe {', '.join(missed)})" if missed else ""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        body = folder / "body.json"
        body.write_text(json.dumps(request_body()))
        script = folder / "post.lua"
        script.write_text(
            f'local f = io.open("{body}", "rb")\nwrk.method = "POST"\nwrk.body = f:read("*a")\nf:close()\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        print(
            "| shedding | req/s | shed (non-2xx) | p50 | p99 | /healthz answered within 2 s |\n"
            "|---|---|---|---|---|---|"
        )
        for label, cap, lag in (("defaults (32 calls, 0.25 s lag)", 32, 0.25), ("none", 100_000, 1000.0)):
            port = free_port()
            env = {
                "OI_CDS_DEMO": "true",
                "OI_CDS_MAX_CONCURRENT_HOOKS": str(cap),
                "OI_CDS_SHED_LOOP_LAG_S": str(lag),
                "OI_CDS_DATABASE_URL": f"sqlite:///{folder / f'{cap}.sqlite3'}",
            }
            command = bench_command(port)
            with uvicorn_server(command, port, folder / f"{cap}.log", env) as base:
                probes: list[bool] = []
                stop = threading.Event()
                prober = threading.Thread(target=_probe, args=(port, probes, stop))
                prober.start()
                out = subprocess.run(
                    [
                        "wrk",
                        "-t2",
                        f"-c{args.connections}",
                        f"-d{args.duration}s",
                        "--latency",
                        "-s",
                        str(script),
                        base + "/cds-services/oi-management",
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                stop.set()
                prober.join()
            rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
            shed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
            p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
            print(
                f"| {label} | {rps.group(1) if rps else '?'} | {shed.group(1) if shed else 0} | "
                f"{p50.group(1) if p50 else '?'} | {p99.group(1) if p99 else '?'} | "
                f"{sum(probes)} of {len(probes)}{_missed(probes)} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
