"""`oi-cds serve --workers N`: a listening socket per worker, so that connections opened
together reach every worker; a worker that dies or hangs is replaced; one that cannot start
stops the service; workers stop when their supervisor is killed; the port of a running service is
refused to a second one. Read off /proc: which process holds which TCP socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from services.cds_hooks.examples import patient_view_example
from tests.servers import free_port, service_command, uvicorn_server

pytestmark = pytest.mark.skipif(
    not (hasattr(socket, "SO_REUSEPORT") and Path("/proc/net/tcp").exists()),
    reason="needs SO_REUSEPORT and /proc/net/tcp (Linux): elsewhere `--workers` is uvicorn's own",
)

WORKERS = 2
LISTEN = "0A"  # /proc/net/tcp's state of a listening socket
DEMO = {"OI_CDS_DEMO": "true"}


def _tcp() -> list[tuple[int, int, str, int]]:
    """Every TCP socket of this machine: (local port, remote port, state, inode)."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, remote = fields[1].rsplit(":", 1)[1], fields[2].rsplit(":", 1)[1]
                rows.append((int(local, 16), int(remote, 16), fields[3], int(fields[9])))
    return rows


def _owners(inodes: set[int]) -> dict[int, set[int]]:
    """inode -> the pids that hold the socket (this user's processes)."""
    found: dict[int, set[int]] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and int(link[8:-1]) in inodes:
                    found.setdefault(int(link[8:-1]), set()).add(int(proc.name))
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue  # a process that ended, or another user's
    return found


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def listeners(port: int) -> dict[int, int]:
    """The processes listening on the port: pid -> their listening sockets."""
    inodes = {inode for local, _, state, inode in _tcp() if local == port and state == LISTEN}
    counts: dict[int, int] = {}
    for pids in _owners(inodes).values():
        for pid in pids:
            counts[pid] = counts.get(pid, 0) + 1
    return counts


@contextmanager
def serving(
    tmp_path: Path, workers: int = WORKERS, env: dict[str, str] | None = None, options: tuple[str, ...] = ()
) -> Iterator[tuple[str, int]]:
    port = free_port()
    command = [*service_command(port), "--workers", str(workers), *options]
    env = {**DEMO, "OI_CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **(env or {})}
    with uvicorn_server(command, port, tmp_path / "log.txt", env) as base:
        deadline = time.monotonic() + 30
        while len(listeners(port)) < workers and time.monotonic() < deadline:
            time.sleep(0.1)  # /healthz answered: the other workers are still starting
        yield base, port


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.1)


def _run_to_exit(port: int, database_url: str) -> subprocess.CompletedProcess[str]:
    """`oi-cds serve --workers 2` expected to stop by itself."""
    return subprocess.run(
        [*service_command(port), "--workers", str(WORKERS)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **DEMO, "OI_CDS_DATABASE_URL": database_url},
    )


def test_each_worker_listens_and_connections_opened_together_reach_all(tmp_path: Path) -> None:
    with serving(tmp_path) as (_, port), ExitStack() as stack:
        workers = listeners(port)
        assert len(workers) == WORKERS, workers
        assert set(workers.values()) == {1}, "each worker has a listening socket of its own"
        # as an EHR's connection pool does: many keep-alive connections opened at once
        clients = [stack.enter_context(socket.create_connection(("127.0.0.1", port))) for _ in range(24)]
        for client in clients:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        for client in clients:
            assert client.recv(4096).startswith(b"HTTP/1.1 200"), "every connection is answered"
        ours = {client.getsockname()[1] for client in clients}
        served = {inode for local, remote, state, inode in _tcp() if local == port and remote in ours}
        serving_pids = set().union(*_owners(served).values())
        # with one shared socket, connections opened together all went to one worker in half
        # the runs (measured); with a socket each, all 24 on one worker is a 1-in-8-million event
        assert serving_pids == set(workers), (serving_pids, workers)


def test_metrics_count_the_calls_of_every_worker(tmp_path: Path) -> None:
    """Each worker counts in its own registry unless they share a PROMETHEUS_MULTIPROC_DIR: the
    supervisor makes one, so every scrape, whichever worker takes it, gives the same totals."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()

    def metrics_folders() -> list[str]:
        return [p.name for p in scratch.iterdir() if p.name.startswith("oi-cds-metrics-")]

    with serving(tmp_path, env={"TMPDIR": str(scratch)}) as (base, port):
        assert len(listeners(port)) == WORKERS
        calls = 20
        for _ in range(calls):  # a connection each: the kernel spreads them over the workers
            answer = httpx.post(f"{base}/cds-services/oi-management", json=patient_view_example(), timeout=30)
            assert answer.status_code == 200
        line = 'oi_cds_requests_total{endpoint="hook",service="oi-management",status="200"}'
        for _ in range(8):
            scraped = httpx.get(f"{base}/metrics", timeout=10).text
            counts = [float(row.split()[-1]) for row in scraped.splitlines() if row.startswith(line)]
            assert counts == [calls], counts
        assert len(metrics_folders()) == 1
    assert metrics_folders() == [], "the metrics folder is removed at exit"


def test_a_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    with serving(tmp_path) as (base, port):
        before = listeners(port)
        supervisor = {_ppid(pid) for pid in before}
        victim = min(before)
        os.kill(victim, signal.SIGKILL)

        def replaced() -> bool:
            now = listeners(port)  # once: the victim may go between two looks
            return len(now) == WORKERS and victim not in now

        _wait_for(replaced, "a new worker listening in place of the killed one")
        supervisors = {_ppid(pid) for pid in listeners(port)}
        assert supervisors == supervisor, "the same supervisor started the new worker"
        for _ in range(10):  # fresh connections: whichever worker takes them answers
            assert httpx.get(base + "/healthz", timeout=10).status_code == 200
    assert "starting another" in (tmp_path / "log.txt").read_text()


def test_a_worker_that_hangs_is_killed_and_replaced(tmp_path: Path) -> None:
    """A stopped process keeps its socket, and the kernel would go on handing it connections
    that are never answered: a worker whose event loop has not run for --worker-timeout goes."""
    with serving(tmp_path, options=("--worker-timeout", "2")) as (base, port):
        before = listeners(port)
        victim = min(before)
        os.kill(victim, signal.SIGSTOP)  # alive, holding its socket, running nothing

        def replaced() -> bool:
            now = listeners(port)
            return len(now) == WORKERS and victim not in now

        _wait_for(replaced, "a new worker listening in place of the hung one")
        assert not Path(f"/proc/{victim}").exists(), "the hung worker was killed and reaped"
        for _ in range(10):  # fresh connections: none goes to the hung worker any more
            assert httpx.get(base + "/healthz", timeout=10).status_code == 200
    log = (tmp_path / "log.txt").read_text()
    assert f"worker {victim} has not run its event loop" in log
    assert "starting another" in log


def test_workers_that_serve_are_not_taken_for_hung(tmp_path: Path) -> None:
    """Each worker's loop beats every second: with a 3 s limit, serving workers, idle or busy,
    stay the same processes."""
    with serving(tmp_path, options=("--worker-timeout", "3")) as (base, port):
        workers = set(listeners(port))
        assert len(workers) == WORKERS
        deadline = time.monotonic() + 7
        while time.monotonic() < deadline:
            answer = httpx.post(f"{base}/cds-services/oi-management", json=patient_view_example(), timeout=30)
            assert answer.status_code == 200
            time.sleep(0.2)
        assert set(listeners(port)) == workers
    assert "has not run its event loop" not in (tmp_path / "log.txt").read_text()


def test_a_service_stopped_whole_and_resumed_keeps_its_workers(tmp_path: Path) -> None:
    """Ctrl-Z then `fg`, or a paused VM: every process stood still, the workers' beats are old
    when the supervisor wakes, and none of them hung. The supervisor resumes first here, as it
    may: it must see that it stood still itself before it judges the workers."""
    with serving(tmp_path, options=("--worker-timeout", "2")) as (base, port):
        workers = set(listeners(port))
        (supervisor,) = {_ppid(pid) for pid in workers}
        for pid in (supervisor, *workers):
            os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(6)  # longer than the limit, and than a round of the supervisor's
            os.kill(supervisor, signal.SIGCONT)
            time.sleep(1)  # a round or two: the workers' beats are 7 s old
        finally:
            for pid in (supervisor, *workers):
                os.kill(pid, signal.SIGCONT)
        time.sleep(3)
        assert set(listeners(port)) == workers
        assert httpx.get(base + "/healthz", timeout=10).status_code == 200
    assert "has not run its event loop" not in (tmp_path / "log.txt").read_text()


def test_stopping_the_service_stops_every_worker(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, **DEMO, "OI_CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    with (tmp_path / "log.txt").open("wb") as log:
        proc = subprocess.Popen(
            [*service_command(port), "--workers", str(WORKERS)], stdout=log, stderr=log, env=env
        )
        try:
            _wait_for(lambda: len(listeners(port)) == WORKERS, "both workers listening")
            workers = set(listeners(port))
            assert {_ppid(pid) for pid in workers} == {proc.pid}
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived the service"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # the port is free again


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves the supervisor no time to stop its workers: they notice and stop."""
    with serving(tmp_path) as (_, port):
        workers = set(listeners(port))
        (supervisor,) = {_ppid(pid) for pid in workers}
        os.kill(supervisor, signal.SIGKILL)
        _wait_for(lambda: not listeners(port), "no worker left listening on the port")
        _wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), "every worker gone")
    assert "the supervisor is gone" in (tmp_path / "log.txt").read_text()


def test_a_second_service_on_the_same_port_is_refused(tmp_path: Path) -> None:
    with serving(tmp_path) as (base, port):
        second = _run_to_exit(port, "sqlite://")
        assert second.returncode == 1
        assert "cannot listen on 127.0.0.1" in second.stderr
        assert "Address already in use" in second.stderr
        # the running service kept its port and its workers
        assert len(listeners(port)) == WORKERS
        assert httpx.get(base + "/healthz", timeout=10).status_code == 200


def test_a_worker_that_cannot_start_stops_the_service(tmp_path: Path) -> None:
    port = free_port()
    run = _run_to_exit(port, "postgresql+psycopg://postgres@127.0.0.1:1/none")
    assert run.returncode == 3
    assert "a worker stopped before it served" in run.stderr
    assert run.stderr.count("Started server process") <= WORKERS, "no worker is started again"
    assert listeners(port) == {}


def test_one_worker_is_uvicorn_as_before(tmp_path: Path) -> None:
    with serving(tmp_path, workers=1) as (_, port):
        (pid,) = listeners(port)
        # one process, started by this test, listens itself: no supervisor in between
        assert _ppid(pid) == os.getpid()
        assert "oi_cds.workers" not in (tmp_path / "log.txt").read_text()
