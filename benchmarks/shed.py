"""Overload: latency with load shedding, against the same service without, same run.

    python -m benchmarks.shed [--duration 15] [--connections 200]

wrk keeps `connections` patient-view calls in flight against 1 uvicorn worker: once with
OI_CDS_MAX_CONCURRENT_HOOKS=8, once with the cap out of reach. Without shedding every call
queues and the tail grows with the queue; with it the excess is answered 503 at once, so no
call (admitted or shed) waits long. wrk reports one latency distribution for all responses.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.load import request_body
from tests.servers import bench_command, free_port, uvicorn_server


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=200)
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
        print("| cap | req/s | shed (non-2xx) | p50 (ms) | p99 (ms) |\n|---|---|---|---|---|")
        for cap in (8, 100_000):
            port = free_port()
            env = {
                "OI_CDS_DEMO": "true",
                "OI_CDS_MAX_CONCURRENT_HOOKS": str(cap),
                "OI_CDS_DATABASE_URL": f"sqlite:///{folder / f'{cap}.sqlite3'}",
            }
            command = bench_command(port)
            with uvicorn_server(command, port, folder / f"{cap}.log", env) as base:
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
            rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
            shed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
            p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
            label = str(cap) if cap < 100_000 else "none"
            print(
                f"| {label} | {rps.group(1) if rps else '?'} | {shed.group(1) if shed else 0} | "
                f"{p50.group(1) if p50 else '?'} | {p99.group(1) if p99 else '?'} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
