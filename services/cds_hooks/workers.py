"""Several uvicorn worker processes, each listening on a socket of its own (SO_REUSEPORT).

uvicorn's own ``--workers`` shares one listening socket between its workers, and whichever
worker wakes first accepts every connection that is waiting. Connections opened together (an
EHR's connection pool, a proxy's keep-alive pool, a load test) can then all land on one worker
and stay there for their lifetime while the others idle: measured here with 2 workers, 10
connections opened at once all went to one worker in 4 runs of 8, at half the throughput.
With a socket per worker, the kernel spreads connections over the workers by a hash of their
addresses. Where the platform has no SO_REUSEPORT, uvicorn's own supervisor is used.

The supervisor restarts a worker that dies after it started serving; a worker that dies before
it served (the application, its settings or the socket cannot start) stops the service, as it
would fail the same way again. Workers stop when the supervisor is gone, even if it was killed
(else they would keep the port). The workers' Prometheus metrics are aggregated
(PROMETHEUS_MULTIPROC_DIR: a fresh folder of the supervisor's, removed at exit, unless set).

A worker that hangs without dying would keep its socket, and the kernel would go on giving it
its share of new connections, each waiting for an answer that never comes. So each worker's
event loop beats (a shared timestamp, every second), and a worker whose loop has not run for
``worker_timeout`` seconds is killed and replaced, like gunicorn's ``--timeout``. The beat is
the event loop's own, not a thread's: a loop blocked by a stuck call is a hang, though the
process lives. Heavy work (``$apply``, reports) runs in threads, so a busy worker still beats.
When the supervisor finds it stood still itself (the whole service stopped with Ctrl-Z, a paused
VM), the workers stood still with it: the limit counts again from then.
Unlike uvicorn's supervisor, it does not restart the workers on SIGHUP.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import logging
import logging.config
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

log = logging.getLogger("oi_cds.workers")

# When a worker's event loop last ran (time.monotonic), in shared memory with no lock: a lock
# held by a worker stopped mid-write would hang the supervisor's next read, and an aligned
# 8-byte value is written and read whole
Beat = ctypes.c_double

STARTUP_FAILURE = 3  # uvicorn's exit code when a server cannot start
STOP_GRACE_S = 30.0  # a worker still finishing requests after this is killed
WORKER_TIMEOUT_S = 30.0  # a worker whose event loop has not run for this long is killed
BEAT_S = 1.0
CHECK_S = 0.5  # the supervisor's round: dead workers, hung workers
STALLED_S = 5.0  # a round this late: the supervisor itself was stopped
_SPAWN = multiprocessing.get_context("spawn")  # as uvicorn: no state forked from the supervisor


def serve(
    app: str,
    *,
    host: str,
    port: int,
    workers: int,
    worker_timeout: float = WORKER_TIMEOUT_S,
    **options: Any,
) -> int:
    """Serve `app` (an import string) and return the exit code. ``options`` are uvicorn.Config's."""
    # port 0 is a port of the kernel's choosing: one per socket, so the workers share uvicorn's
    if workers <= 1 or port == 0 or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(app, host=host, port=port, workers=workers, **options)
        return 0
    if isinstance(options.get("log_config"), dict):
        logging.config.dictConfig(options["log_config"])
    try:
        # With SO_REUSEPORT a second copy of the service on this port would share it without a
        # word: the port must be free, as it must be for uvicorn
        _bind(host, port, reuse_port=False).close()
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
        return 1
    return Supervisor(dict(options, app=app, host=host, port=port), workers, worker_timeout).run()


def _bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn's Config.bind_socket
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, which tells the supervisor once it serves, then beats from its loop."""

    def __init__(self, config: uvicorn.Config, ready: Event, beat: Beat) -> None:
        super().__init__(config)
        self.ready = ready
        self.beat = beat
        self.beating: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.beat.value = time.monotonic()
            self.beating = asyncio.create_task(self._beat())
            self.ready.set()

    async def _beat(self) -> None:
        while True:
            self.beat.value = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process
            await asyncio.sleep(BEAT_S)


def _orphaned() -> None:
    """Stop this worker (gracefully) when the supervisor is gone, killed or not: a worker left
    behind would keep the port, and answer, with nothing to replace or stop it."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        log.warning("the supervisor is gone; worker %d stops", os.getpid())
        os.kill(os.getpid(), signal.SIGTERM)


def _worker(options: dict[str, Any], ready: Event, beat: Beat) -> None:
    threading.Thread(target=_orphaned, name="supervisor-watch", daemon=True).start()
    config = uvicorn.Config(**options)  # configures this process's logging
    try:
        sock = _bind(config.host, config.port, reuse_port=True)
    except OSError as exc:
        log.error("worker cannot listen on %s:%d: %s", config.host, config.port, exc.strerror or exc)
        sys.exit(STARTUP_FAILURE)
    _Server(config, ready, beat).run(sockets=[sock])


@contextmanager
def _shared_metrics() -> Iterator[None]:
    """A fresh PROMETHEUS_MULTIPROC_DIR for the workers, unless one is set: each worker counts
    in its own registry otherwise, and /metrics answers for whichever worker takes the scrape."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    folder = tempfile.mkdtemp(prefix="oi-cds-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder  # inherited by the workers, read at import
    try:
        yield
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        shutil.rmtree(folder, ignore_errors=True)


class Supervisor:
    def __init__(self, options: dict[str, Any], count: int, worker_timeout: float = WORKER_TIMEOUT_S) -> None:
        self.options = options
        self.count = count
        self.worker_timeout = worker_timeout
        self.stopping = threading.Event()
        self.workers: list[tuple[SpawnProcess, Event, Beat]] = []
        self.grace_from = 0.0  # hang checks count from here after the supervisor stood still

    def _start(self) -> tuple[SpawnProcess, Event, Beat]:
        ready = _SPAWN.Event()
        beat: Beat = _SPAWN.RawValue(ctypes.c_double, 0.0)
        process = _SPAWN.Process(target=_worker, args=(self.options, ready, beat), name="oi-cds-worker")
        process.start()
        return process, ready, beat

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._stop)
        with _shared_metrics():
            return self._supervise()

    def _supervise(self) -> int:
        self.workers = [self._start() for _ in range(self.count)]
        log.info(
            "listening on http://%s:%d with %d workers, a socket each",
            self.options["host"],
            self.options["port"],
            self.count,
        )
        code = 0
        checked = time.monotonic()
        while not self.stopping.wait(CHECK_S):
            now, last = time.monotonic(), checked
            checked = now
            if now - last > STALLED_S:
                # the supervisor itself stood still (the whole service stopped with Ctrl-Z, a
                # paused VM): the workers stood still with it, and get a full limit from now
                self.grace_from = now
            self._kill_hung(now)
            code = self._replace_dead()
            if code:
                break
        self._stop_all()
        return code

    def _kill_hung(self, now: float) -> None:
        """Kill a serving worker whose event loop has stopped (replaced as any dead worker)."""
        for process, ready, beat in self.workers:
            silent = now - max(beat.value, self.grace_from)
            if ready.is_set() and silent > self.worker_timeout and process.is_alive():
                log.error(
                    "worker %s has not run its event loop for %.0f s (limit %g s); killed",
                    process.pid,
                    silent,
                    self.worker_timeout,
                )
                process.kill()
                process.join(STOP_GRACE_S)

    def _replace_dead(self) -> int:
        for i, (process, ready, _) in enumerate(self.workers):
            if process.is_alive():
                continue
            if not ready.is_set():
                log.error("a worker stopped before it served (exit code %s); stopping", process.exitcode)
                return STARTUP_FAILURE
            log.warning("worker %s stopped (exit code %s); starting another", process.pid, process.exitcode)
            self.workers[i] = self._start()
        return 0

    def _stop_all(self) -> None:
        for process, _, _ in self.workers:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for process, _, _ in self.workers:
            process.join(STOP_GRACE_S)
            if process.is_alive():
                log.warning("worker %s still running after %g s; killed", process.pid, STOP_GRACE_S)
                process.kill()
                process.join()


def main(argv: Sequence[str] | None = None) -> int:
    """For the load benchmark: any ASGI app served the way ``oi-cds serve`` serves the service."""
    parser = argparse.ArgumentParser(prog="python -m services.cds_hooks.workers")
    parser.add_argument("app")
    parser.add_argument("--factory", action="store_true")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-config", type=Path, help="a logging configuration (dictConfig) as JSON")
    parser.add_argument("--worker-timeout", type=float, default=WORKER_TIMEOUT_S)
    args = parser.parse_args(argv)
    options: dict[str, Any] = {"factory": args.factory, "access_log": False, "log_level": "warning"}
    if args.log_config:
        options["log_config"] = json.loads(args.log_config.read_text())
    return serve(
        args.app,
        host=args.host,
        port=args.port,
        workers=args.workers,
        worker_timeout=args.worker_timeout,
        **options,
    )


if __name__ == "__main__":
    sys.exit(main())
