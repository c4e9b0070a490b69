"""$apply throughput and memory: one Bundle, an NDJSON stream, and a Bulk Data folder.

    python -m benchmarks.apply [--patients 10000] [--stream-patients 100000]

Against a real uvicorn (1 worker, demo mode) for the HTTP forms and `oi-cds plan --ndjson-dir`
for the folder; patients/s and the peak RSS (VmHWM) of the process that did the work. The
patients cycle through the patient-view vignettes with unique ids.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import httpx

from benchmarks.conftest import vignette_patients
from tests.servers import bench_command, free_port

APPLY = "/fhir/PlanDefinition/oi-management/$apply?evaluationDate=2026-06-01"


def patients(count: int) -> Iterator[list[dict]]:  # type: ignore[type-arg]
    templates = [[e["resource"] for e in b["entry"]] for b in vignette_patients()]
    for i in range(count):
        pid = f"p{i}"
        out = []
        for r in templates[i % len(templates)]:
            copy = dict(r, id=pid if r["resourceType"] == "Patient" else f"{pid}-{r['id'][:8]}")
            if "subject" in copy:
                copy["subject"] = {"reference": f"Patient/{pid}"}
            out.append(copy)
        yield out


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve(folder: Path, tag: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "OI_CDS_DEMO": "true",
        "OI_CDS_DATABASE_URL": f"sqlite:///{folder / f'{tag}.sqlite3'}",
        "OI_CDS_MAX_BODY_BYTES": str(500_000_000),  # the one-Bundle form is one large body
    }
    command = bench_command(port)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(base + "/healthz", timeout=1)
            return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--stream-patients", type=int, default=100_000)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # Bulk Data folder through the CLI, first: RUSAGE_CHILDREN then holds only its peak
        export = folder / "export"
        export.mkdir()
        handles: dict[str, TextIO] = {}
        for group in patients(args.patients):
            for r in group:
                fh = handles.get(r["resourceType"]) or handles.setdefault(
                    r["resourceType"], (export / f"{r['resourceType']}.ndjson").open("w")
                )
                fh.write(json.dumps(r) + "\n")
        for fh in handles.values():
            fh.close()
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "services.cli",
                "plan",
                "--at",
                "2026-06-01",
                "--ndjson-dir",
                str(export),
                "--out",
                str(folder / "out"),
            ],
            check=True,
            capture_output=True,
        )
        elapsed = time.perf_counter() - started
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        rows.append(("Bulk folder (CLI, incl. start-up)", args.patients, elapsed, rss))
        # one Bundle
        entries = [{"resource": r} for group in patients(args.patients) for r in group]
        body = json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}).encode()
        del entries
        proc, base = serve(folder, "bundle")
        try:
            started = time.perf_counter()
            response = httpx.post(
                base + APPLY, content=body, timeout=600, headers={"Content-Type": "application/fhir+json"}
            )
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.text[:300]
            rows.append(("one Bundle", args.patients, elapsed, peak_rss_mib(proc.pid)))
        finally:
            proc.terminate()
            proc.wait()
        del body
        # NDJSON streams: the same count, then the large one
        for count in (args.patients, args.stream_patients):
            proc, base = serve(folder, f"ndjson{count}")

            def lines(n: int = count) -> Iterator[bytes]:
                for group in patients(n):
                    yield b"".join(json.dumps(r).encode() + b"\n" for r in group)

            try:
                started = time.perf_counter()
                out = 0
                with httpx.stream(
                    "POST",
                    base + APPLY,
                    content=lines(),
                    timeout=3600,
                    headers={"Content-Type": "application/fhir+ndjson"},
                ) as response:
                    for _ in response.iter_lines():
                        out += 1
                elapsed = time.perf_counter() - started
                assert out == count, out
                rows.append(("NDJSON stream", count, elapsed, peak_rss_mib(proc.pid)))
            finally:
                proc.terminate()
                proc.wait()
    print("| form | patients | seconds | patients/s | peak RSS (MiB) |\n|---|---|---|---|---|")
    for form, count, seconds, rss in rows:
        print(f"| {form} | {count} | {seconds:.1f} | {count / seconds:.0f} | {rss:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
