"""Two replicas on this machine's real PostgreSQL and Redis, as the compose topology runs them.

Skips with a message where PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379) is absent;
runs whenever they are present (CI has them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.cds_hooks.test_auth import ES, ISS_A
from tests.cds_hooks.test_operations import POSTGRES_ADMIN, _postgres_available
from tests.servers import free_port, service_command, uvicorn_server

REDIS_URL = os.environ.get("OI_CDS_TEST_REDIS", "redis://127.0.0.1:6379/3")
PUBLIC = "https://cds.example.test"  # what the load balancer is called; both replicas check aud against it


def _redis_available() -> bool:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
        client.close()
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str, subprocess.Popen[bytes] | None]]:
    if not _postgres_available():
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN}: replica tests need it")
    if not _redis_available():
        pytest.skip(f"Redis not reachable at {REDIS_URL}: replica tests need it")
    folder = tmp_path_factory.mktemp("replicas")
    name = "oi_cds_replicas_" + uuid.uuid4().hex[:8]
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + name
    (folder / "jwks.json").write_text(json.dumps({"keys": [ES.jwk()]}))
    env = {
        "OI_CDS_DATABASE_URL": url,
        "OI_CDS_REDIS_URL": REDIS_URL,
        "OI_CDS_AUTH_MODE": "required",
        "OI_CDS_TRUSTED_ISSUERS": json.dumps({ISS_A: {"jwks_file": str(folder / "jwks.json")}}),
        "OI_CDS_PUBLIC_BASE_URL": PUBLIC,
    }
    migrate = subprocess.run(
        [sys.executable, "-m", "services.cli", "migrate"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert migrate.returncode == 0, migrate.stderr
    try:
        with ExitStack() as stack:
            ports = [free_port(), free_port()]
            bases = [
                stack.enter_context(uvicorn_server(service_command(p), p, folder / f"r{p}.log", env))
                for p in ports
            ]
            yield bases[0], bases[1], None
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _auth(path: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {ES.token(PUBLIC + path)}"}


def _feedback(card: str, stamp: str = "2026-11-25T10:00:00Z") -> dict[str, object]:
    return {"feedback": [{"card": card, "outcome": "overridden", "outcomeTimestamp": stamp}]}


def _total(base: str) -> int:
    return int(httpx.get(base + "/admin/feedback", headers=_auth("/admin/feedback")).json()["total"])


def test_feedback_is_stored_once_and_visible_through_the_other(replicas: tuple[str, str, None]) -> None:
    a, b, _ = replicas
    path = "/cds-services/oi-management/feedback"
    before = _total(b)
    card = str(uuid.uuid4())
    assert httpx.post(a + path, json=_feedback(card), headers=_auth(path)).status_code == 200
    assert httpx.post(b + path, json=_feedback(card), headers=_auth(path)).json()["stored"] == 0
    assert _total(b) == before + 1


def test_jti_replayed_to_the_other_replica_is_rejected(replicas: tuple[str, str, None]) -> None:
    a, b, _ = replicas
    headers = _auth("/cds-services")
    assert httpx.get(a + "/cds-services", headers=headers).status_code == 200
    replay = httpx.get(b + "/cds-services", headers=headers)
    assert replay.status_code == 401
    assert "already used" in replay.json()["issue"][0]["diagnostics"]


def test_killing_a_replica_mid_load_loses_no_acknowledged_feedback(tmp_path: Path) -> None:
    if not (_postgres_available() and _redis_available()):
        pytest.skip("PostgreSQL and Redis are needed")
    name = "oi_cds_kill_" + uuid.uuid4().hex[:8]
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + name
    env = {"OI_CDS_DATABASE_URL": url, "OI_CDS_REDIS_URL": REDIS_URL, "OI_CDS_AUTH_MODE": "off"}
    subprocess.run(
        [sys.executable, "-m", "services.cli", "migrate"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    acked: list[str] = []
    try:
        ports = [free_port(), free_port()]
        log = (tmp_path / "victim.log").open("wb")
        victim = subprocess.Popen(
            service_command(ports[0]), stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
        with uvicorn_server(service_command(ports[1]), ports[1], tmp_path / "survivor.log", env) as survivor:
            victim_base = f"http://127.0.0.1:{ports[0]}"
            for _ in range(100):
                try:
                    httpx.get(victim_base + "/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            stop = threading.Event()

            def load(base: str) -> None:
                with httpx.Client(timeout=5) as client:
                    while not stop.is_set():
                        card = str(uuid.uuid4())
                        try:
                            response = client.post(
                                base + "/cds-services/oi-order-sign/feedback", json=_feedback(card)
                            )
                        except httpx.TransportError:
                            continue  # the killed replica: not acknowledged, may or may not be stored
                        if response.status_code == 200:
                            acked.append(card)

            threads = [
                threading.Thread(target=load, args=(base,))
                for base in (victim_base, survivor)
                for _ in range(3)
            ]
            for thread in threads:
                thread.start()
            time.sleep(1.5)
            victim.send_signal(signal.SIGKILL)
            time.sleep(1.0)
            stop.set()
            for thread in threads:
                thread.join()
            victim.wait()
            log.close()
            assert len(acked) > 20
            stored = int(httpx.get(survivor + "/admin/feedback").json()["total"])
            assert stored >= len(acked)
            engine = create_engine(url)
            with engine.connect() as connection:
                cards = {row[0] for row in connection.execute(text("SELECT card_uuid FROM feedback"))}
            engine.dispose()
            assert set(acked) <= cards  # every acknowledged item is there
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
