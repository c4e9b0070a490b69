"""Admission control for hook calls: one pure-ASGI layer, outermost, as cheap as possible.

For every POST under /cds-services/ it

1. reads the whole body first, under a deadline (``OI_CDS_BODY_READ_TIMEOUT_S``): a client that
   trickles its body holds no hook slot, and one that is too slow gets 408;
2. answers 413 to a body over ``OI_CDS_MAX_BODY_BYTES`` only after reading and discarding the
   rest (up to a bound), because clients that send the whole body before reading the answer
   (urllib, Java's HttpURLConnection) see a connection reset, not the 413, if the server answers
   and closes while they still send;
3. sheds with 503 + Retry-After when ``OI_CDS_MAX_CONCURRENT_HOOKS`` calls are in progress, or
   when the event loop lags by more than ``OI_CDS_SHED_LOOP_LAG_S``: calls that never await
   (full prefetch) queue inside the loop where an in-flight count cannot see them, but the lag
   can; refusals carry CORS headers themselves and are logged as one line a second.

Health checks are never shed (they are not hook calls).
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.cds_hooks import metrics
from services.cds_hooks.cors import Cors
from services.cds_hooks.errors import Msg
from services.plan_builder.errors import message_details

log = logging.getLogger("oi_cds.request")


def _outcome(code: str, diagnostics: str, msg: Msg) -> bytes:
    issue = {"severity": "error", "code": code, "details": message_details(msg), "diagnostics": diagnostics}
    return orjson.dumps({"resourceType": "OperationOutcome", "issue": [issue]})


_SHED = _outcome("transient", "too many hook calls in progress; retry shortly", Msg.BUSY)
_SLOW = _outcome("timeout", "the request body did not arrive in time", Msg.SLOW_BODY)
_TICK_S = 0.02


class LoopLag:
    """How far behind the event loop is: a task that sleeps a short tick and measures how late
    it wakes (and, while it waits, how late it already is)."""

    def __init__(self) -> None:
        self.lag = 0.0
        self._expected = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._expected = time.monotonic() + _TICK_S
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self._expected = time.monotonic() + _TICK_S
            await asyncio.sleep(_TICK_S)
            self.lag = max(0.0, time.monotonic() - self._expected)

    def now(self) -> float:
        return max(self.lag, time.monotonic() - self._expected)


class HookAdmission:
    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        cors: Cors,
        max_body_bytes: int,
        body_timeout_s: float,
        max_loop_lag_s: float,
        hooks: ASGIApp | None = None,
        services: set[str] | None = None,
    ) -> None:
        self.app = app
        # hook calls go straight to their endpoint (with the same CORS and request log)
        self.hooks = hooks
        self.services = services or set()
        self.limit = limit
        self.cors = cors
        self.max_body_bytes = max_body_bytes
        # what is read and thrown away before a 413, so that a client that sends first and reads
        # later sees the answer; a bigger body is cut off (connection closed) after the 413
        self.drain_bytes = max(4 * max_body_bytes, 16_000_000)
        self.body_timeout_s = body_timeout_s
        self.max_loop_lag_s = max_loop_lag_s
        self.in_flight = 0
        self.lag = LoopLag()
        self._shed_since_log = 0
        self._last_log = time.monotonic()

    def _headers(self, scope: Scope, body: bytes, retry: bool) -> list[tuple[bytes, bytes]]:
        headers = [(b"content-type", b"application/fhir+json"), (b"content-length", str(len(body)).encode())]
        if retry:
            headers.append((b"retry-after", b"1"))
        return headers + self.cors.headers(scope)

    async def _answer(self, scope: Scope, send: Send, status: int, body: bytes, retry: bool = False) -> None:
        await send(
            {"type": "http.response.start", "status": status, "headers": self._headers(scope, body, retry)}
        )
        await send({"type": "http.response.body", "body": body})

    async def _read(self, receive: Receive) -> tuple[bytes, bool, bool]:
        """(body, too big, client gone)"""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", False, True
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= self.max_body_bytes:
                chunks.append(chunk)
            elif size > self.drain_bytes:
                return b"", True, False  # drained enough: answer, and the server closes
            if not message.get("more_body", False):
                return b"".join(chunks), size > self.max_body_bytes, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith("/cds-services/")
        ):
            await self.app(scope, receive, send)
            return
        self.lag.start()
        first = await receive()
        if (
            first["type"] == "http.request"
            and not first.get("more_body")
            and len(first.get("body", b"")) <= self.max_body_bytes
        ):
            body, too_big, gone = first.get("body", b""), False, False  # the common case: no timer
        else:
            try:
                async with asyncio.timeout(self.body_timeout_s):
                    body, too_big, gone = await self._read(_replay_message(first, receive))
            except TimeoutError:
                await self._answer(scope, send, 408, _SLOW)
                return
        if gone:
            return
        if too_big:
            message = f"request body over the limit of {self.max_body_bytes} bytes"
            await self._answer(scope, send, 413, _outcome("too-long", message, Msg.TOO_LARGE))
            return
        if self.in_flight >= self.limit or self.lag.now() > self.max_loop_lag_s:
            await self._shed(scope, send)
            return
        self.in_flight += 1
        try:
            target = self.hooks if self.hooks is not None and _is_hook(scope, self.services) else self.app
            await target(scope, _replay(body, receive), send)
        finally:
            self.in_flight -= 1

    async def _shed(self, scope: Scope, send: Send) -> None:
        await self._answer(scope, send, 503, _SHED, retry=True)
        metrics.SHED.inc()
        self._shed_since_log += 1
        now = time.monotonic()
        if now - self._last_log >= 1.0:
            log.warning(
                "shed hook calls", extra={"fields": {"shed": self._shed_since_log, "limit": self.limit}}
            )
            self._shed_since_log = 0
            self._last_log = now


def _replay_message(first: Message, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return replayed


def _is_hook(scope: Scope, services: set[str]) -> bool:
    parts = scope["path"].split("/")
    return len(parts) == 3 and parts[2] in services


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, then the real channel (for the disconnect)."""
    return _replay_message({"type": "http.request", "body": body, "more_body": False}, receive)
