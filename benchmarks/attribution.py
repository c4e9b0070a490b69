"""Where a patient-view call's time goes: its stages timed in process and under a real uvicorn.

    python -m benchmarks.attribution [--duration 8] [--connections 10]

The same stages of the service are wrapped with timers (the ASGI call, its receive and its two
sends, ``routers.services.answer``, gathering the prefetch, ``Planner.plan``, the cards, the
metrics and log line) and the OI child of ``benchmarks.load`` is sent (1) in process, the app
awaited in a loop, and (2) to 1 uvicorn worker driven by wrk, server and wrk on separate CPUs
as ``benchmarks.load`` runs them. Both write the JSON request line to a file, as
``oi-cds serve`` does. It prints microseconds per call of each stage, side by side: the
in-process profile says what the code costs; the server column says what a call costs where
the event loop, the HTTP layer and the kernel's loopback share the CPU with it. A timer costs
well under a microsecond; compare stages, and take req/s from ``benchmarks.load``.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import logging.config
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.instructions import hook_scope
from benchmarks.load import cpu_split, oi_child_body, wrk
from tests.servers import free_port, uvicorn_server

HOOK = "/cds-services/oi-management"
TIMINGS = "/__timings"  # the wrapper's own route: the totals so far, then reset
ENV = {
    "OI_CDS_DEMO": "true",
    "OI_CDS_MAX_CONCURRENT_HOOKS": "100000",  # capacity, not shedding: every call admitted
    "OI_CDS_SHED_LOOP_LAG_S": "1000",
}
STAGES = ("call", "receive", "send", "answer", "gather", "plan", "cards", "answered")
Totals = dict[str, list[float]]  # stage -> [seconds, calls]


def _add(totals: Totals, stage: str, seconds: float) -> None:
    entry = totals.setdefault(stage, [0.0, 0.0])
    entry[0] += seconds
    entry[1] += 1


def _timed(totals: Totals, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(fn):

        async def run_async(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                _add(totals, stage, time.perf_counter() - started)

        return run_async

    def run(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _add(totals, stage, time.perf_counter() - started)

    return run


def _wrap(totals: Totals, owner: Any, name: str, stage: str) -> None:
    setattr(owner, name, _timed(totals, stage, getattr(owner, name)))


def timed_app(totals: Totals) -> tuple[Callable[..., Awaitable[None]], Any]:
    """The service's ASGI app with its stages wrapped (by their module names, as the calling
    modules look them up), and a GET route of the totals; and the app itself (its lifespan)."""
    from services.cds_hooks import hook_endpoint
    from services.cds_hooks.hooks import common, patient_view
    from services.cds_hooks.main import create_app
    from services.plan_builder.planner import Planner

    for owner, name, stage in (
        (hook_endpoint, "answer", "answer"),
        (hook_endpoint, "answered", "answered"),
        (common, "gather", "gather"),
        (patient_view, "patient_view_cards", "cards"),
        (Planner, "plan", "plan"),
    ):
        _wrap(totals, owner, name, stage)
    inner = create_app()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != HOOK:
            if scope.get("path") == TIMINGS:
                body = json.dumps(totals).encode()
                totals.clear()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": body})
                return
            await inner(scope, receive, send)
            return
        started = time.perf_counter()
        await inner(scope, _timed(totals, "receive", receive), _timed(totals, "send", send))
        _add(totals, "call", time.perf_counter() - started)

    return app, inner


def per_call(totals: Totals) -> dict[str, float]:
    """Microseconds per hook call of each stage (two sends a call: both counted)."""
    calls = totals["call"][1]
    return {stage: seconds / calls * 1e6 for stage, (seconds, _) in totals.items()}


async def in_process(body: bytes, calls: int) -> dict[str, float]:
    totals: Totals = {}
    app, inner = timed_app(totals)
    scope = hook_scope(HOOK)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message

    async with inner.router.lifespan_context(inner):
        for round_calls in (calls // 5, calls):  # warm-up, then measured
            totals.clear()
            for _ in range(round_calls):
                await app(dict(scope, state={}), receive, send)
    return per_call(totals)


def serve(port: int) -> None:
    import uvicorn

    from services.cds_hooks import logs

    app, _ = timed_app({})
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=logs.configure(), access_log=False)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--calls", type=int, default=5000, help="in-process calls")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    if shutil.which("wrk") is None:
        sys.stderr.write("wrk is not installed (apt-get install wrk)\n")
        return 2
    body = json.dumps(oi_child_body()).encode()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**ENV, "OI_CDS_DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite3'}"}
        os.environ.update(env)
        from services.cds_hooks import logs

        # the log line to a file, as the server writes it
        with (folder / "in-process.log").open("w") as log_file:
            saved, sys.stderr = sys.stderr, log_file
            try:
                logging.config.dictConfig(logs.configure())
                inside = asyncio.run(in_process(body, args.calls))
            finally:
                sys.stderr = saved
        body_path = folder / "body.json"
        body_path.write_bytes(body)
        port = free_port()
        pin_server, pin_wrk = cpu_split(1, True)
        command = [*pin_server, sys.executable, "-m", "benchmarks.attribution", "--serve", str(port)]
        with uvicorn_server(command, port, folder / "server.log", env) as base:
            wrk(base + HOOK, body_path, args.connections, 2, pin_wrk)  # warm up
            httpx.get(base + TIMINGS)  # reset
            result = wrk(base + HOOK, body_path, args.connections, args.duration, pin_wrk)
            served = per_call(httpx.get(base + TIMINGS).json())
    print(
        f"patient-view, OI child ({len(body)} bytes); in process: {args.calls} calls; uvicorn: 1 worker, "
        f"wrk c={args.connections}, {args.duration} s, {result['rps']:.0f} req/s "
        f"({1e6 / result['rps']:.0f} µs a call)\n"
    )
    print("| stage | in process (µs a call) | under uvicorn (µs a call) | ratio |")
    print("|---|---|---|---|")
    for stage in STAGES:
        a, b = inside.get(stage, 0.0), served.get(stage, 0.0)
        print(f"| {stage} | {a:.1f} | {b:.1f} | {b / a if a else float('nan'):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
