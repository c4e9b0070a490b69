"""One exception family, mapped to FHIR OperationOutcome responses in one place.

Every error body on every endpoint is an OperationOutcome with a human-readable diagnostics
text and no patient data (what CDS Hooks 3.0 recommends; 2.0 leaves error bodies open).
"""

from __future__ import annotations

import logging
from enum import StrEnum

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope

from services.cds_hooks import metrics
from services.plan_builder.errors import PlanInputError, first_problem, message_details

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


class Msg(StrEnum):
    """Stable codes of the HTTP face's errors (as HAPI FHIR's Msg.code): every error body
    carries one in OperationOutcome.issue.details and the request log line names it.
    Integrations and tests match on the code, never on the wording. Never renumber."""

    BAD_REQUEST = "OICDS-H400"
    INVALID_JSON = "OICDS-H401"
    NOT_AN_OBJECT = "OICDS-H402"
    INVALID_HOOK_REQUEST = "OICDS-H410"
    WRONG_HOOK = "OICDS-H411"
    INVALID_CONTEXT = "OICDS-H412"
    INVALID_PREFETCH = "OICDS-H413"  # a prefetch key that is not the FHIR data it names
    OTHER_PATIENT = "OICDS-H414"  # prefetch about another patient than context.patientId
    INVALID_DRAFT_ORDERS = "OICDS-H415"
    INVALID_APPLY = "OICDS-H420"  # $apply Parameters or Bundle not as the operation takes them
    INVALID_EVALUATION_DATE = "OICDS-H421"
    INVALID_FEEDBACK = "OICDS-H430"
    INVALID_QUERY = "OICDS-H440"
    UNAUTHORIZED = "OICDS-H460"
    EXPLAIN_NOT_ALLOWED = "OICDS-H461"  # explain mode asked by a caller the operator does not trust
    NOT_FOUND = "OICDS-H470"
    UNKNOWN_SERVICE = "OICDS-H471"
    METHOD_NOT_ALLOWED = "OICDS-H472"
    DATA_UNAVAILABLE = "OICDS-H480"  # CDS Hooks' 412: required FHIR data could not be had
    DEADLINE = "OICDS-H481"
    TOO_LARGE = "OICDS-H490"
    MEDIA_TYPE = "OICDS-H491"
    PLANNING_FAILED = "OICDS-H495"  # $apply?strict: the patient could not be planned
    SLOW_BODY = "OICDS-H482"  # the request body did not arrive within the admission deadline
    STREAM_STOPPED = "OICDS-H496"  # NDJSON $apply stopped: a line too long, answers not read
    BUSY = "OICDS-H503"  # shed or out of $apply slots: retry after Retry-After
    NOT_READY = "OICDS-H504"  # /readyz: database unreachable or not migrated
    INTERNAL = "OICDS-H500"


class CdsError(Exception):
    status = 400
    code = "invalid"
    msg: StrEnum = Msg.BAD_REQUEST

    def __init__(
        self,
        diagnostics: str,
        *,
        msg: StrEnum | None = None,
        status: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.headers = headers
        if msg is not None:
            self.msg = msg
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class BadRequest(CdsError):
    status, code, msg = 400, "invalid", Msg.BAD_REQUEST


class NotFound(CdsError):
    status, code, msg = 404, "not-found", Msg.NOT_FOUND


class Unauthorized(CdsError):
    """401 with a WWW-Authenticate challenge; the reason is coarse on purpose."""

    status, code, msg = 401, "login", Msg.UNAUTHORIZED

    def __init__(self, reason: str) -> None:
        challenge = f'Bearer error="invalid_token", error_description="{reason}"'
        metrics.JWT_REJECTED.labels(reason).inc()
        super().__init__(f"unauthorized: {reason}", headers={"WWW-Authenticate": challenge})


class Forbidden(CdsError):
    status, code, msg = 403, "forbidden", Msg.BAD_REQUEST


class PreconditionFailed(CdsError):
    """CDS Hooks' 412: the FHIR data the service needs could not be had."""

    status, code, msg = 412, "incomplete", Msg.DATA_UNAVAILABLE


class PayloadTooLarge(CdsError):
    status, code, msg = 413, "too-long", Msg.TOO_LARGE


class UnsupportedMediaType(CdsError):
    status, code, msg = 415, "not-supported", Msg.MEDIA_TYPE


def outcome_response(
    status: int,
    diagnostics: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    msg: StrEnum = Msg.INTERNAL,
) -> Response:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": code or _ISSUE_CODE.get(status, "processing"),
                "details": message_details(msg),
                "diagnostics": diagnostics,
            }
        ],
    }
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/fhir+json", headers=headers
    )


def error_response(scope: Scope, exc: Exception) -> Response:
    """Every error of the HTTP face -> its OperationOutcome, in one place (the FastAPI handlers
    and the hook endpoint both call it); the message code goes to the request log."""
    status, code, headers = 500, None, None
    if isinstance(exc, CdsError):
        status, code, headers, msg, text = exc.status, exc.code, exc.headers, exc.msg, exc.diagnostics
    elif isinstance(exc, PlanInputError):
        # input the plan builder cannot read: the client's error, said where it was found
        status, code, msg = 400, "invalid", exc.msg
        text = f"{exc.context}: {exc.describe()}" if exc.context else exc.describe()
    elif isinstance(exc, StarletteHTTPException):
        status, headers = exc.status_code, dict(exc.headers or {})
        msg = {404: Msg.NOT_FOUND, 405: Msg.METHOD_NOT_ALLOWED}.get(status, Msg.BAD_REQUEST)
        text = {404: "no such endpoint", 405: "method not allowed on this endpoint"}.get(
            status, str(exc.detail)
        )
    elif isinstance(exc, RequestValidationError):
        where, what = first_problem(exc.errors())
        status, msg, text = 400, Msg.BAD_REQUEST, f"invalid request: {where}: {what}"
    else:
        # Never echo the exception text: it may hold request data.
        log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
        msg, text = Msg.INTERNAL, "internal error; the request was not processed"
    scope.setdefault("state", {})["msg"] = msg.value
    return outcome_response(status, text, code, headers, msg)


async def _handle(request: Request, exc: Exception) -> Response:
    return error_response(request.scope, exc)


def install(app: FastAPI) -> None:
    for family in (CdsError, PlanInputError, StarletteHTTPException, RequestValidationError, Exception):
        app.add_exception_handler(family, _handle)
