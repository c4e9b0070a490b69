"""The feedback call: stored (no patient data) before the answer."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from services.cds_hooks.body import json_object, read_json
from services.cds_hooks.deps import RegistryDep, SettingsDep, StoreDep
from services.cds_hooks.errors import BadRequest, Msg
from services.cds_hooks.models import FeedbackRequest
from services.cds_hooks.routers.services import first_error, json_response, service_of
from services.cds_hooks.store import parse_timestamp

router = APIRouter(tags=["CDS Hooks"])


def _has_nul(node: object) -> bool:
    if isinstance(node, str):
        return "\x00" in node
    if isinstance(node, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in node.items())
    if isinstance(node, list):
        return any(_has_nul(v) for v in node)
    return False


@router.post("/cds-services/{service_id}/feedback", summary="Feedback on cards")
async def post_feedback(
    service_id: str, request: Request, services: RegistryDep, settings: SettingsDep, store: StoreDep
) -> Response:
    service = service_of(services, service_id)
    body = json_object(await read_json(request, settings.max_body_bytes), "the feedback request")
    if not isinstance(body.get("feedback"), list):
        raise BadRequest("feedback must be an array", msg=Msg.INVALID_FEEDBACK)
    if _has_nul(body):
        # PostgreSQL refuses NUL in text; SQLite would keep it: refuse it on both, here
        raise BadRequest("feedback strings must not contain NUL characters", msg=Msg.INVALID_FEEDBACK)
    try:
        parsed = FeedbackRequest.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(first_error(exc, "invalid feedback"), msg=Msg.INVALID_FEEDBACK) from exc
    for item in parsed.feedback:
        try:
            parse_timestamp(item.outcomeTimestamp)
        except ValueError as exc:
            raise BadRequest(
                f"outcomeTimestamp {item.outcomeTimestamp!r} is not an RFC 3339 date-time",
                msg=Msg.INVALID_FEEDBACK,
            ) from exc
    stored = await store.record(service.id, parsed.feedback)
    return json_response({"received": len(parsed.feedback), "stored": stored})
