"""$apply off the event loop, with a cap, and NDJSON answers streamed while the body arrives
(issue 16, items 7 and 8), against a real uvicorn."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.cds_hooks.conftest import example_bundle, hook_request, prefetch_of
from tests.plan_builder.test_stream import _lines
from tests.servers import demo_service

APPLY = "/fhir/PlanDefinition/oi-management/$apply?evaluationDate=2026-06-01"
PID = "oi-type-iii-child"


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {
        "OI_CDS_MAX_CONCURRENT_APPLY": "1",
        "OI_CDS_APPLY_SPOOL_MAX_BYTES": "200000",
        "OI_CDS_MAX_BODY_BYTES": "20000000",
    }
    with demo_service(tmp_path_factory.mktemp("capped"), env) as base:
        yield base


def _big_bundle(patients: int) -> bytes:
    entries = []
    for line in _lines(patients * 3):
        entries.append({"resource": json.loads(line)})
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}).encode()


def test_apply_is_capped_and_runs_off_the_loop(capped: str) -> None:
    body = _big_bundle(3_000)
    done = threading.Event()
    result: dict[str, int] = {}

    def big() -> None:
        response = httpx.post(
            capped + APPLY, content=body, headers={"Content-Type": "application/fhir+json"}, timeout=120
        )
        result["status"] = response.status_code
        done.set()

    worker = threading.Thread(target=big)
    worker.start()
    health, hooks, second = [], [], None
    hook = hook_request("patient-view", PID, prefetch_of(example_bundle(), PID))
    try:
        while not done.is_set():
            health.append(httpx.get(capped + "/healthz", timeout=30).status_code)
            hooks.append(
                httpx.post(capped + "/cds-services/oi-management", json=hook, timeout=30).status_code
            )
            if second is None:
                second = httpx.post(
                    capped + APPLY,
                    content=b'{"resourceType": "Bundle", "type": "collection", "entry": []}',
                    headers={"Content-Type": "application/fhir+json"},
                )
    finally:
        worker.join()
    assert result["status"] == 200
    assert health
    assert set(health) == {200}
    assert set(hooks) <= {200, 412}  # a hook answers, or says its deadline passed: never late
    assert 200 in hooks
    assert second is not None
    assert second.status_code == 503
    assert second.headers["retry-after"]
    assert second.json()["resourceType"] == "OperationOutcome"


def _ndjson(patients: int) -> bytes:
    return b"".join(line + b"\n" for line in _lines(patients * 3))


def test_answers_arrive_while_the_body_is_still_being_sent(service: str) -> None:
    """Issue 16: nothing was sent until the whole body had arrived."""
    port = int(service.rsplit(":", 1)[1])
    first, rest = _ndjson(300), _ndjson(300)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST "
            + APPLY.encode()
            + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+ndjson\r\n"
            + f"Content-Length: {len(first) + len(rest)}\r\n\r\n".encode()
            + first
        )
        sock.settimeout(30)
        received = b""
        while b"CarePlan" not in received:
            received += sock.recv(65536)  # answers come before the rest of the body is sent
        sock.sendall(rest)
        while not received.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    assert received.startswith(b"HTTP/1.1 200")
    assert (
        received.count(b'"resourceType":"CarePlan"') + received.count(b'"resourceType":"OperationOutcome"')
        >= 600
    )


def test_a_client_that_never_reads_is_stopped_at_the_spool_limit(capped: str) -> None:
    body = _ndjson(2_000)  # answers far over the 200 kB spool limit
    response = httpx.post(
        capped + APPLY, content=body, headers={"Content-Type": "application/fhir+ndjson"}, timeout=60
    )
    lines = response.text.splitlines()
    last = json.loads(lines[-1])
    assert last["resourceType"] == "OperationOutcome"
    assert "stream stopped" in last["issue"][0]["diagnostics"]
    assert len(lines) < 2_000
