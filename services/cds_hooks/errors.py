"""One exception family, mapped to FHIR OperationOutcome responses in one place.

Every error body on every endpoint is an OperationOutcome with a human-readable diagnostics
text and no patient data (what CDS Hooks 3.0 recommends; 2.0 leaves error bodies open).
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from services.cds_hooks import metrics

log = logging.getLogger("oi_cds")

_ISSUE_CODE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    412: "incomplete",
    413: "too-long",
    415: "not-supported",
    422: "processing",
    500: "exception",
}


class CdsError(Exception):
    status = 400
    code = "invalid"

    def __init__(
        self,
        diagnostics: str,
        *,
        status: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.headers = headers
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class BadRequest(CdsError):
    status, code = 400, "invalid"


class NotFound(CdsError):
    status, code = 404, "not-found"


class Unauthorized(CdsError):
    """401 with a WWW-Authenticate challenge; the reason is coarse on purpose."""

    status, code = 401, "login"

    def __init__(self, reason: str) -> None:
        challenge = f'Bearer error="invalid_token", error_description="{reason}"'
        metrics.JWT_REJECTED.labels(reason).inc()
        super().__init__(f"unauthorized: {reason}", headers={"WWW-Authenticate": challenge})


class PreconditionFailed(CdsError):
    """CDS Hooks' 412: the FHIR data the service needs could not be had."""

    status, code = 412, "incomplete"


class PayloadTooLarge(CdsError):
    status, code = 413, "too-long"


class UnsupportedMediaType(CdsError):
    status, code = 415, "not-supported"


def outcome_response(
    status: int, diagnostics: str, code: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": code or _ISSUE_CODE.get(status, "processing"),
                "diagnostics": diagnostics,
            }
        ],
    }
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/fhir+json", headers=headers
    )


async def _cds_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, CdsError)
    return outcome_response(exc.status, exc.diagnostics, exc.code, exc.headers)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    text = {404: "no such endpoint", 405: "method not allowed on this endpoint"}.get(
        exc.status_code, str(exc.detail)
    )
    return outcome_response(exc.status_code, text, headers=dict(exc.headers or {}))


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return outcome_response(400, f"invalid request: {where}: {first.get('msg', 'invalid')}")


async def _unexpected(_: Request, exc: Exception) -> Response:
    # Never echo the exception text: it may hold request data.
    log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return outcome_response(500, "internal error; the request was not processed")


def install(app: FastAPI) -> None:
    app.add_exception_handler(CdsError, _cds_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
