"""Admission control: saturation sheds load at once instead of growing multi-second tails."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from services.cds_hooks import metrics

log = logging.getLogger("oi_cds.request")

_BODY = (
    b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient",'
    b'"diagnostics":"too many hook calls in progress; retry shortly"}]}'
)


class HookConcurrencyLimit:
    """At most `limit` hook calls in progress per worker; beyond it, 503 with Retry-After.

    Outermost in the stack and as cheap as possible: counted from the moment uvicorn hands
    the request to the app until the response is sent (requests waiting for the CPU count
    too), refused without routing, per-request logging or body parsing. The refusal carries
    the CORS headers itself, and refusals are logged as one line a second.
    """

    def __init__(self, app: ASGIApp, limit: int, cors_origins: list[str], any_origin: bool) -> None:
        self.app = app
        self.limit = limit
        self.cors_origins = {o.encode() for o in cors_origins}
        self.any_origin = any_origin
        self.in_flight = 0
        self._shed_since_log = 0
        self._last_log = time.monotonic()

    def _refuse_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"content-type", b"application/fhir+json"),
            (b"retry-after", b"1"),
            (b"content-length", str(len(_BODY)).encode()),
        ]
        origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
        if origin is not None and (self.any_origin or origin in self.cors_origins):
            headers.append((b"access-control-allow-origin", b"*" if self.any_origin else origin))
            headers.append((b"vary", b"Origin"))
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith("/cds-services/")
            or self.in_flight < self.limit
        ):
            if (
                scope["type"] == "http"
                and scope["method"] == "POST"
                and scope["path"].startswith("/cds-services/")
            ):
                self.in_flight += 1
                try:
                    await self.app(scope, receive, send)
                finally:
                    self.in_flight -= 1
            else:
                await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 503, "headers": self._refuse_headers(scope)})
        await send({"type": "http.response.body", "body": _BODY})
        metrics.SHED.inc()
        self._shed_since_log += 1
        now = time.monotonic()
        if now - self._last_log >= 1.0:
            log.warning(
                "shed hook calls", extra={"fields": {"shed": self._shed_since_log, "limit": self.limit}}
            )
            self._shed_since_log = 0
            self._last_log = now
