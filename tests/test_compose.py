"""The container deployment, run for real: images built, `docker-compose up`, and the topology
tested through nginx on 127.0.0.1 (`make compose-test`; also part of `make test`).

Images: Debian-based stand-ins from `deploy/local-images.sh` (no registry here), or the public
ones with OI_CDS_COMPOSE_IMAGES=public. Skips with a message where no Docker engine runs
(`make docker-engine` installs and starts one, as root) or where the stand-ins cannot be built.
What the compose file promises (health, order, non-root user, read-only key, ports on 127.0.0.1
only, one network) is read off the running containers, not off the file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.cli import mint_dev_token
from tests.servers import free_port

ROOT = Path(__file__).parent.parent
FEEDBACK = "/cds-services/oi-management/feedback"
REPLICAS = ("cds-1", "cds-2")

pytestmark = pytest.mark.compose


def _run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and _run(["docker", "compose", "version"]).returncode == 0:
        return ["docker", "compose"]
    return None


def _local_images_env() -> dict[str, str]:
    """The stand-in images (built or reused by the script), as compose variables."""
    if os.environ.get("OI_CDS_COMPOSE_IMAGES") == "public":
        return {}
    built = _run(["bash", str(ROOT / "deploy" / "local-images.sh")], cwd=ROOT)
    if built.returncode != 0:
        pytest.skip(f"deploy/local-images.sh could not build the stand-in images: {built.stderr[-400:]}")
    env: dict[str, str] = {}
    for line in (ROOT / "deploy" / "local-images.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


@dataclass
class Topology:
    compose: list[str]
    project: str
    env: dict[str, str]
    keys: Path
    base: str

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = _run([*self.compose, "-p", self.project, *args], cwd=ROOT, env=self.env)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        return done

    def container(self, service: str) -> str:
        found = _run(
            [
                "docker",
                "ps",
                "-aq",
                "--filter",
                f"label=com.docker.compose.project={self.project}",
                "--filter",
                f"label=com.docker.compose.service={service}",
            ]
        ).stdout.split()
        assert len(found) == 1, f"{service}: {len(found)} containers"
        return found[0]

    def inspect(self, service: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(_run(["docker", "inspect", self.container(service)]).stdout)
        return data[0]

    def exec(self, service: str, *command: str) -> subprocess.CompletedProcess[str]:
        return _run(["docker", "exec", self.container(service), *command])

    def sql(self, query: str) -> str:
        done = self.exec("postgres", "psql", "-U", "oicds", "-d", "oicds", "-tAc", query)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def request_ids(self, service: str) -> set[str]:
        """The request ids a replica logged (its JSON request lines; no patient data in them)."""
        logs = _run(["docker", "logs", self.container(service)])
        ids = set()
        for line in (logs.stdout + logs.stderr).splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if "request_id" in entry:
                    ids.add(entry["request_id"])
        return ids

    def auth(self, path: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + mint_dev_token(self.keys, self.base + path)}

    def wait_healthy(self, services: tuple[str, ...], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = {s: self.inspect(s)["State"].get("Health", {}).get("Status", "none") for s in services}
            if all(state == "healthy" for state in states.values()):
                return
            time.sleep(1)
        raise AssertionError(f"not healthy after {timeout} s: {states}")

    def leftovers(self) -> list[str]:
        label = f"label=com.docker.compose.project={self.project}"
        found = []
        for kind in (["ps", "-aq"], ["volume", "ls", "-q"], ["network", "ls", "-q"]):
            found += _run(["docker", *kind, "--filter", label]).stdout.split()
        return found


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    compose = _compose_command()
    if compose is None or not shutil.which("docker"):
        pytest.skip("no docker client or compose: `make docker-engine` (as root) installs them")
    if _run(["docker", "info"]).returncode != 0:
        pytest.skip("no Docker engine running: `make docker-engine` (as root) installs and starts one")
    images = _local_images_env()
    keys = tmp_path_factory.mktemp("compose-keys")
    subprocess.run(
        [sys.executable, "-m", "services.cli", "dev-keys", "--dir", str(keys)],
        check=True,
        capture_output=True,
    )
    port = free_port()
    project = "oicdstest" + uuid.uuid4().hex[:8]
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **images,
        "OI_CDS_LB_PORT": str(port),
        "OI_CDS_PUBLIC_BASE_URL": base,
        "OI_CDS_DEV_KEYS": str(keys),
        "OI_CDS_IMAGE": f"oi-cds:{project}",
        "DOCKER_BUILDKIT": "0",  # the legacy builder ships with every engine; buildx may be absent
    }
    top = Topology(compose, project, env, keys, base)
    try:
        top.run("build", "--quiet")
        top.run("up", "-d")
        top.wait_healthy(("postgres", "redis", *REPLICAS, "lb"))
        yield top
    finally:
        top.run("down", "-v", "--remove-orphans", check=False)
        _run(["docker", "rmi", f"oi-cds:{project}"])
        _run(["docker", "image", "prune", "-f", "--filter", "label=org.oi-cds.stage=install"])


def test_containers_keep_what_the_compose_file_promises(topology: Topology) -> None:
    network = f"{topology.project}_default"
    for service in ("postgres", "redis", *REPLICAS, "lb"):
        info = topology.inspect(service)
        assert info["State"]["Health"]["Status"] == "healthy", service
        assert set(info["NetworkSettings"]["Networks"]) == {network}, service
        published = {k: v for k, v in (info["NetworkSettings"]["Ports"] or {}).items() if v}
        if service == "lb":
            assert [b["HostIp"] for b in published["8080/tcp"]] == ["127.0.0.1"]
        else:
            assert published == {}, f"{service} is reachable from the host"
    migrate = topology.inspect("migrate")
    assert (migrate["State"]["Status"], migrate["State"]["ExitCode"]) == ("exited", 0)
    assert migrate["RestartCount"] == 0
    assert topology.sql("SELECT count(*) FROM alembic_version") == "1"
    for replica in REPLICAS:
        info = topology.inspect(replica)
        assert info["State"]["StartedAt"] > migrate["State"]["FinishedAt"], "started before migrate ended"
        assert info["Config"]["User"] == "oicds"
        assert topology.exec(replica, "id", "-u").stdout.strip() == "10001"
        mounts = {m["Destination"]: m for m in info["Mounts"]}
        assert mounts["/keys/jwks.json"]["RW"] is False
        read = topology.exec(replica, "python", "-c", "import json; json.load(open('/keys/jwks.json'))")
        assert read.returncode == 0, f"the key set is not readable by the service user: {read.stderr}"
        write = topology.exec(replica, "python", "-c", "open('/keys/jwks.json', 'a')")
        assert write.returncode != 0
        assert topology.exec(replica, "test", "-e", "/keys/private.pem").returncode != 0


def test_discovery_and_patient_view_through_nginx(topology: Topology) -> None:
    refused = httpx.get(topology.base + "/cds-services")
    assert refused.status_code == 401
    assert refused.json()["resourceType"] == "OperationOutcome"
    services = httpx.get(topology.base + "/cds-services", headers=topology.auth("/cds-services"))
    assert services.status_code == 200
    assert "oi-management" in {s["id"] for s in services.json()["services"]}
    path = "/cds-services/oi-management"
    body = json.loads((ROOT / "docs" / "examples" / "patient-view.json").read_text())
    answer = httpx.post(topology.base + path, json=body, headers=topology.auth(path), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["cards"][0]["summary"].startswith("OI management:")


def test_both_replicas_answer(topology: Topology) -> None:
    with httpx.Client() as client:
        ids = [
            client.get(topology.base + "/cds-services", headers=topology.auth("/cds-services")).headers[
                "x-request-id"
            ]
            for _ in range(20)
        ]
    served = {replica: topology.request_ids(replica) & set(ids) for replica in REPLICAS}
    assert all(served.values()), {k: len(v) for k, v in served.items()}
    assert sum(len(v) for v in served.values()) == 20


def _replica_of(topology: Topology, request_id: str) -> str:
    [replica] = [r for r in REPLICAS if request_id in topology.request_ids(r)]
    return replica


def test_replayed_jti_is_refused_through_the_other_replica(topology: Topology) -> None:
    headers = topology.auth("/cds-services")
    first = httpx.get(topology.base + "/cds-services", headers=headers)
    assert first.status_code == 200
    used_at = _replica_of(topology, first.headers["x-request-id"])
    for _ in range(10):  # nginx alternates; a replay landing on the same replica is tried again
        replay = httpx.get(topology.base + "/cds-services", headers=headers)
        assert replay.status_code == 401
        assert "already used" in replay.json()["issue"][0]["diagnostics"]
        if _replica_of(topology, replay.headers["x-request-id"]) != used_at:
            return
    pytest.fail("no replay reached the other replica")


def _feedback(card: str) -> dict[str, object]:
    return {"feedback": [{"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-12-01T10:00:00Z"}]}


def _total(topology: Topology) -> int:
    admin = httpx.get(topology.base + "/admin/feedback", headers=topology.auth("/admin/feedback"))
    assert admin.status_code == 200, admin.text
    return int(admin.json()["total"])


def test_feedback_is_stored_in_postgres_and_readable_through_admin(topology: Topology) -> None:
    before = _total(topology)
    card = str(uuid.uuid4())
    stored = httpx.post(topology.base + FEEDBACK, json=_feedback(card), headers=topology.auth(FEEDBACK))
    assert stored.status_code == 200, stored.text
    assert _total(topology) == before + 1
    assert topology.sql(f"SELECT count(*) FROM feedback WHERE card_uuid = '{card}'") == "1"


def test_a_killed_replica_loses_no_acknowledged_feedback_and_comes_back(topology: Topology) -> None:
    acked: list[tuple[float, str]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=10) as client:
            for _ in range(2000):  # bounded, whatever happens to the replicas
                if stop.is_set():
                    return
                time.sleep(0.02)
                card = str(uuid.uuid4())
                try:
                    answer = client.post(
                        topology.base + FEEDBACK, json=_feedback(card), headers=topology.auth(FEEDBACK)
                    )
                except httpx.TransportError:
                    continue  # not acknowledged: may or may not be stored
                if answer.status_code == 200:
                    acked.append((time.monotonic(), card))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    assert _run(["docker", "kill", topology.container("cds-1")]).returncode == 0
    killed_at = time.monotonic()
    time.sleep(3)
    stop.set()
    for thread in threads:
        thread.join()
    assert len(acked) > 20, len(acked)
    assert sum(1 for at, _ in acked if at > killed_at + 0.5) > 5, "nginx did not route around the kill"
    stored = set(topology.sql("SELECT card_uuid FROM feedback").split())
    assert {card for _, card in acked} <= stored, "acknowledged feedback lost"

    assert topology.inspect("cds-1")["State"]["Running"] is False
    topology.run("start", "cds-1")
    topology.wait_healthy(("cds-1",))
    deadline = time.monotonic() + 30  # nginx retries a failed server after fail_timeout
    while time.monotonic() < deadline:
        answer = httpx.get(topology.base + "/cds-services", headers=topology.auth("/cds-services"))
        assert answer.status_code == 200
        if answer.headers["x-request-id"] in topology.request_ids("cds-1"):
            return
        time.sleep(0.5)
    pytest.fail("the restarted replica is healthy but nginx sends it nothing")


def test_down_leaves_nothing_behind(topology: Topology) -> None:
    assert topology.leftovers()  # the topology is up until here
    topology.run("down", "-v", "--remove-orphans")
    assert topology.leftovers() == []
    with pytest.raises(httpx.TransportError):
        httpx.get(topology.base + "/healthz", timeout=2)
