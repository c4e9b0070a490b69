"""The FHIR fallback against a slow server: patient-view with no prefetch at all.

    python -m benchmarks.fallback [--calls 20] [--latency 150,350]

For each latency, a FHIR stub (tests/cds_hooks/fhir_stub.py) that waits that long before every
answer, and the service allow-listing it: sequential patient-view calls for the shared
vignettes' OI patients without prefetch, against the budgets of issue 14 (150 ms per query:
500 ms per hook; 350 ms: 2 s), and whether each answer has the cards the prefetch call gets.
The baseline is the stub's own latency (one query): the hook needs at least two rounds of
queries (7 keys, 4 at a time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.cds_hooks.cds_rules import careplan_keys
from tests.cds_hooks.conftest import hook_request, prefetch_of, vignette_today
from tests.conftest import load_vignettes
from tests.servers import bench_command, fhir_stub_command, free_port, uvicorn_server

BUDGET_MS = {150: 500, 350: 2000}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--latency", default="150,350", help="ms per FHIR query, comma-separated")
    args = parser.parse_args()
    vids = [v["id"] for v in load_vignettes() if v["hook"] == "patient-view" and v["expected_keys"]]
    lines = [
        "| FHIR latency | hook p50 | hook max | budget | ratio p50 / one query | same cards as prefetch |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = []
        for vid in vids:
            bundle, _, _ = vignette_today(vid)
            path = folder / f"{vid}.json"
            path.write_text(json.dumps(bundle))
            data.append((vid, bundle, path))
        for latency in (int(x) for x in args.latency.split(",")):
            stub_port, port = free_port(), free_port()
            stub_env = {
                "FHIR_STUB_DATA": ":".join(str(p) for _, _, p in data),
                "FHIR_STUB_LATENCY_MS": str(latency),
            }
            with uvicorn_server(
                fhir_stub_command(stub_port),
                stub_port,
                folder / f"stub-{latency}.log",
                stub_env,
            ) as stub:
                env = {
                    "OI_CDS_DEMO": "true",
                    "OI_CDS_DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite3'}",
                    "OI_CDS_FHIR_ALLOWLIST": stub + "/fhir",
                }
                with uvicorn_server(bench_command(port), port, folder / f"svc-{latency}.log", env) as base:
                    url = f"{base}/cds-services/oi-management"
                    times, same = [], 0
                    for i in range(args.calls):
                        vid, bundle, _ = data[i % len(data)]
                        pid = bundle["entry"][0]["resource"]["id"]
                        expected = careplan_keys(
                            httpx.post(
                                url, json=hook_request("patient-view", pid, prefetch_of(bundle, pid))
                            ).json()
                        )
                        body = hook_request("patient-view", pid, None, fhirServer=stub + "/fhir")
                        started = time.perf_counter()
                        response = httpx.post(url, json=body, timeout=10)
                        times.append((time.perf_counter() - started) * 1000)
                        same += response.status_code == 200 and careplan_keys(response.json()) == expected
            p50 = statistics.median(times)
            lines.append(
                f"| {latency} ms | {p50:.0f} ms | {max(times):.0f} ms | {BUDGET_MS.get(latency, '-')} ms | "
                f"{p50 / latency:.1f} | {same}/{args.calls} |"
            )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
