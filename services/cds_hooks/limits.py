"""Admission control: saturation sheds load at once instead of growing multi-second tails."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from services.cds_hooks.errors import outcome_response


class HookConcurrencyLimit:
    """At most `limit` hook calls in progress per worker; beyond it, 503 with Retry-After.

    Counted from the moment uvicorn hands the request to the app until the response is sent,
    so requests waiting for the CPU count too: that is the queue that grows under overload.
    """

    def __init__(self, app: ASGIApp, limit: int, prefix: str = "/cds-services/") -> None:
        self.app = app
        self.limit = limit
        self.prefix = prefix
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            response = outcome_response(
                503, "too many hook calls in progress; retry shortly", headers={"Retry-After": "1"}
            )
            await response(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
