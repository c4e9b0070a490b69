"""Reading a JSON request body within the size limit, with the right errors."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from services.cds_hooks.errors import BadRequest, Msg, PayloadTooLarge, UnsupportedMediaType

JSON_TYPES = ("application/json", "application/fhir+json")


async def read_json(request: Request, max_bytes: int) -> Any:
    check_content_type(request.headers.get("content-type", ""))
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body over the limit of {max_bytes} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"request body over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return loads(b"".join(chunks))


def check_content_type(content_type: str) -> None:
    media = content_type.split(";")[0].strip().lower()
    if media not in JSON_TYPES:
        raise UnsupportedMediaType(f"Content-Type must be application/json, got {media or 'none'!r}")


def loads(raw: bytes) -> Any:
    """A body already read within the limit: its JSON, or the 400 that says why not."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"request body is not valid JSON ({exc.args[0].split(':')[0]})", msg=Msg.INVALID_JSON
        ) from exc


def json_object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"{what} must be a JSON object", msg=Msg.NOT_AN_OBJECT)
    return body
