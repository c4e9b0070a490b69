"""Real uvicorn servers for the tests, on free ports of 127.0.0.1, stopped by PID."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def uvicorn_server(
    command: list[str], port: int, log_path: Path, env: dict[str, str] | None = None, ready: str = "/healthz"
) -> Iterator[str]:
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **_test_defaults(command), **(env or {})},
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(base + ready, timeout=1)
                    break
                except httpx.TransportError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"server did not start: {log_path.read_text()}") from None
                    time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _test_defaults(command: list[str]) -> dict[str, str]:
    """For the test suite's services (not the benchmarks'): the event-loop lag that sheds calls is
    raised, so that a machine busy with other work never turns a test's call into a 503 (the
    tests that check lag shedding set their own)."""
    return {"OI_CDS_SHED_LOOP_LAG_S": "5"} if command[2:4] == ["services.cli", "serve"] else {}


@contextmanager
def demo_service(folder: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """The service in demo mode on a free port, its SQLite file and log in `folder`."""
    port = free_port()
    full = {"OI_CDS_DEMO": "true", "OI_CDS_DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}", **(env or {})}
    with uvicorn_server(service_command(port), port, folder / "log.txt", full) as base:
        yield base


def fhir_stub_command(port: int) -> list[str]:
    """The test FHIR server (tests/cds_hooks/fhir_stub.py); its behaviour is set by FHIR_STUB_*."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "tests.cds_hooks.fhir_stub:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def service_command(port: int) -> list[str]:
    return [sys.executable, "-m", "services.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]


def bench_command(
    port: int, workers: int = 1, app: str = "--factory services.cds_hooks.main:create_app"
) -> list[str]:
    """An app under uvicorn as the benchmarks run it (the service by default), with the workers
    of `oi-cds serve` (a socket each) and no access log."""
    return [
        sys.executable,
        "-m",
        "services.cds_hooks.workers",
        *app.split(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
