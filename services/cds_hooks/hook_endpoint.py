"""The hook call as a plain ASGI endpoint: POST /cds-services/{id} without FastAPI's routing,
dependency solving and exception middleware, which cost more than the hook itself (issue 10's
profile). The same function answers it (routers.services.call_service, also mounted on the
FastAPI router so that the OpenAPI document describes it); errors map to the same
OperationOutcomes as errors.install does.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from services.cds_hooks.deps import Services, require_jwt
from services.cds_hooks.errors import error_response
from services.cds_hooks.routers.services import call_service

log = logging.getLogger("oi_cds")


class HookEndpoint:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app  # the FastAPI app: its state, and everything that is not a hook call

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.app
        request = Request(scope, receive)
        state = request.app.state
        service_id = scope["path"].removeprefix("/cds-services/")
        try:
            if state.settings.auth_required:
                await require_jwt(request)
            response = await call_service(
                service_id, request, Services(state.settings, state.env, state.registry)
            )
        except Exception as exc:  # mapped as errors.install maps them, by the same function
            response = error_response(scope, exc)
        await response(scope, receive, send)
