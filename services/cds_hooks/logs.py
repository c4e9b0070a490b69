"""Structured logs: one JSON line per request; never tokens, prefetch content or patient data.

The request line carries only what the service chose to put there: request id, method, the
path (service ids, no query string), hook instance, status and duration.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.cds_hooks import metrics

log = logging.getLogger("oi_cds.request")


class JsonFormatter(logging.Formatter):
    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # one line per request: the time text is made once a second
            self._second, self._stamp = second, self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        entry: dict[str, Any] = {
            "time": self._stamp,
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__  # the type only: messages may hold data
        try:
            line = orjson.dumps(entry, default=str).decode()
        except TypeError:  # a lone surrogate (a path can hold one): json.dumps escapes it
            return json.dumps(entry, default=str)
        # ASCII only, as json.dumps writes it: a path may hold U+0085 or U+2028, which log
        # readers (str.splitlines among them) take for line breaks
        return line if line.isascii() else json.dumps(entry, default=str)


def configure(level: str = "INFO") -> dict[str, Any]:
    """A logging config (dictConfig) for the service and uvicorn, in JSON lines."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},  # by name: JSON-serialisable
        "handlers": {"default": handler},
        "loggers": {
            "oi_cds": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


class RequestLog:
    """Logs each request once it is answered; sets X-Request-ID on the response (hook calls:
    hook_endpoint.HookEndpoint does the same in its one layer)."""

    def __init__(self, app: ASGIApp, services: set[str]) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id(scope)
        started = time.perf_counter()
        status = 500

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            answered(scope, status, time.perf_counter() - started, self.services)


def new_request_id(scope: Scope) -> str:
    request_id = uuid.uuid4().hex
    scope.setdefault("state", {})["request_id"] = request_id
    return request_id


def answered(scope: Scope, status: int, elapsed: float, services: set[str]) -> None:
    """A request's metrics and its one log line."""
    endpoint, service = metrics.classify(scope["path"], services)
    metrics.child(metrics.REQUESTS, endpoint, service, str(status)).inc()
    metrics.child(metrics.LATENCY, endpoint, service).observe(elapsed)
    if not log.isEnabledFor(logging.INFO):
        return
    state = scope["state"]
    fields = {
        "request_id": state["request_id"],
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "duration_ms": round(elapsed * 1000, 2),
    }
    msg = state.get("msg")
    if msg:
        fields["msg"] = msg  # the error's stable message code
    hook_instance = state.get("hook_instance")
    if hook_instance:
        fields["hook_instance"] = hook_instance
    log.info("request", extra={"fields": fields})
