"""The feedback call: stored (no patient data) before the answer."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from services.cds_hooks.body import json_object, read_json
from services.cds_hooks.deps import RegistryDep, SettingsDep, StoreDep
from services.cds_hooks.errors import BadRequest
from services.cds_hooks.models import FeedbackRequest
from services.cds_hooks.routers.services import first_error, json_response, service_of
from services.cds_hooks.store import parse_timestamp

router = APIRouter(tags=["CDS Hooks"])


@router.post("/cds-services/{service_id}/feedback", summary="Feedback on cards")
async def post_feedback(
    service_id: str, request: Request, services: RegistryDep, settings: SettingsDep, store: StoreDep
) -> Response:
    service = service_of(services, service_id)
    body = json_object(await read_json(request, settings.max_body_bytes), "the feedback request")
    if not isinstance(body.get("feedback"), list):
        raise BadRequest("feedback must be an array")
    try:
        parsed = FeedbackRequest.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(first_error(exc, "invalid feedback")) from exc
    for item in parsed.feedback:
        try:
            parse_timestamp(item.outcomeTimestamp)
        except ValueError as exc:
            raise BadRequest(
                f"outcomeTimestamp {item.outcomeTimestamp!r} is not an RFC 3339 date-time"
            ) from exc
    stored = await store.record(service.id, parsed.feedback)
    return json_response({"received": len(parsed.feedback), "stored": stored})
