"""POST /cds-services/{id}: the whole HTTP face of a hook call in one pure-ASGI layer.

Request id, CORS headers, the JWT check, the call itself (routers.services.answer, which the
FastAPI route also documents), errors mapped as errors.install maps them (by the same
function), the metrics and the request log line, then the answer as orjson bytes.
FastAPI's routing, dependency solving and middleware cost more than the hook itself (issue
10's profile), so hook calls never enter them; HookAdmission hands them here.
"""

from __future__ import annotations

import time

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from services.cds_hooks.body import check_content_type, loads
from services.cds_hooks.cors import Cors
from services.cds_hooks.deps import Services, require_jwt
from services.cds_hooks.errors import PayloadTooLarge, error_response
from services.cds_hooks.logs import answered, new_request_id
from services.cds_hooks.routers.services import answer, service_of


class HookEndpoint:
    def __init__(self, app: ASGIApp, services: set[str], cors: Cors) -> None:
        self.app = app  # the FastAPI app: its state (settings, env, registry, events)
        self.services = services
        self.cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.app
        request_id = new_request_id(scope)
        started = time.perf_counter()
        try:
            body = await self._answer(scope, receive)
            status, headers = 200, [(b"content-type", b"application/json")]
        except Exception as exc:  # mapped as errors.install maps them, by the same function
            response = error_response(scope, exc)
            status, body = response.status_code, bytes(response.body)
            headers = [h for h in response.raw_headers if h[0] != b"content-length"]
        headers += [
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            *self.cors.headers(scope),
        ]
        # logged before the answer leaves: a client that has its answer finds its line
        answered(scope, status, time.perf_counter() - started, self.services)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Receive) -> bytes:
        request = Request(scope, receive)
        state = self.app.state  # type: ignore[attr-defined]
        settings = state.settings
        if settings.auth_required:
            await require_jwt(request)
        service = service_of(state.registry, scope["path"].removeprefix("/cds-services/"))
        check_content_type(request.headers.get("content-type", ""))
        raw = await _body(receive, settings.max_body_bytes)
        deps = Services(settings, state.env, state.registry)
        return orjson.dumps(await answer(service, request, deps, loads(raw)))


async def _body(receive: Receive, max_bytes: int) -> bytes:
    """The body (HookAdmission has read it whole already: one message, within the limit)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"request body over the limit of {max_bytes} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
