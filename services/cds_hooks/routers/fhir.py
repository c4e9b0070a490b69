"""The FHIR face (R4) for integration engines: the knowledge artifacts, and $apply on the OI
PlanDefinition for one patient (Parameters), many (a Bundle) or a stream (NDJSON)."""

from __future__ import annotations

import asyncio
import tempfile
import zlib
from collections.abc import AsyncIterator
from datetime import date
from enum import StrEnum
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from services.cds_hooks.body import JSON_TYPES, json_object, read_json
from services.cds_hooks.config import Settings
from services.cds_hooks.deps import KnowledgeDep, ServicesDep
from services.cds_hooks.errors import BadRequest, CdsError, Msg, NotFound, UnsupportedMediaType
from services.plan_builder.batch import plan_bundle, plan_group
from services.plan_builder.bundle import split_bundle
from services.plan_builder.canonical import MESSAGE_SYSTEM
from services.plan_builder.errors import Msg as PlanMsg
from services.plan_builder.errors import operation_outcome, reading
from services.plan_builder.stream import PatientStream, ndjson_line
from services.plan_builder.structural import validate_resource

router = APIRouter(prefix="/fhir", tags=["FHIR"])
FHIR_JSON = "application/fhir+json"
NDJSON_TYPES = ("application/fhir+ndjson", "application/x-ndjson", "application/ndjson")
ARTIFACTS = (
    "PlanDefinition",
    "ActivityDefinition",
    "CodeSystem",
    "ValueSet",
    "StructureDefinition",
    "ConceptMap",
)
MAX_LINE_BYTES = 1_000_000


class NdjsonResponse(Response):
    """Streams lines produced from a request body that is read inside the iterator.

    Starlette's StreamingResponse listens for a client disconnect on `receive`, which is the
    channel the request body arrives on: reading the body inside its iterator would hang.
    """

    media_type = "application/fhir+ndjson"

    def __init__(self, lines: AsyncIterator[bytes], slot: ApplySlots | None = None) -> None:
        super().__init__(content=None, media_type=self.media_type)
        self.lines = lines
        self.slot = slot

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
            async for line in self.lines:
                await send({"type": "http.response.body", "body": line, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if self.slot is not None:
                self.slot.__exit__()


def fhir(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON)


@router.get("/metadata", summary="CapabilityStatement")
async def metadata(knowledge: KnowledgeDep) -> Response:
    plan = knowledge.management
    resources: list[dict[str, Any]] = [
        {"type": t, "interaction": [{"code": "read"}, {"code": "search-type"}]} for t in ARTIFACTS
    ]
    resources[0]["operation"] = [
        {"name": "apply", "definition": "http://hl7.org/fhir/OperationDefinition/PlanDefinition-apply"}
    ]
    return fhir(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-11-25",
            "kind": "instance",
            "software": {"name": "OI-CDS", "version": plan.version},
            "implementation": {"description": "OI-CDS FHIR face: knowledge artifacts and $apply"},
            "fhirVersion": "4.0.1",
            "format": ["json", "application/fhir+ndjson"],
            "rest": [{"mode": "server", "resource": resources}],
        }
    )


def _artifact_type(resource_type: str) -> str:
    if resource_type not in ARTIFACTS:
        raise NotFound(f"this server serves {', '.join(ARTIFACTS)} only")
    return resource_type


@router.get("/{resource_type}", summary="All artifacts of a type (searchset)")
async def search(resource_type: str, knowledge: KnowledgeDep) -> Response:
    found = knowledge.by_type(_artifact_type(resource_type))
    return fhir(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(found),
            "entry": [{"resource": r} for r in found],
        }
    )


@router.get("/{resource_type}/{rid}", summary="Read a knowledge artifact")
async def read(resource_type: str, rid: str, knowledge: KnowledgeDep) -> Response:
    resource = knowledge.get(_artifact_type(resource_type), rid)
    if resource is None:
        raise NotFound(f"no {resource_type}/{rid}")
    return fhir(resource)


EARLIEST_EVALUATION = date(1900, 1, 1)  # before it, ages and windows overflow date arithmetic


def _parameters(body: dict[str, Any] | None) -> list[dict[str, Any]]:
    found = (body or {}).get("parameter")
    if found is None:
        return []
    if not isinstance(found, list) or not all(isinstance(p, dict) for p in found):
        raise BadRequest("Parameters.parameter must be an array of objects", msg=Msg.INVALID_APPLY)
    return found


def _evaluation_date(request: Request, settings: Settings, parameters: dict[str, Any] | None = None) -> date:
    text: Any = request.query_params.get("evaluationDate")
    for parameter in _parameters(parameters):
        if parameter.get("name") == "evaluationDate":
            text = parameter.get("valueDate") or parameter.get("valueDateTime")
            if isinstance(text, str) and "valueDateTime" in parameter and "valueDate" not in parameter:
                text = text[:10]
    if text:
        try:
            if not isinstance(text, str):
                raise ValueError(text)
            at = date.fromisoformat(text)
        except ValueError as exc:
            raise BadRequest(
                "evaluationDate must be a date (YYYY-MM-DD)", msg=Msg.INVALID_EVALUATION_DATE
            ) from exc
        if at < EARLIEST_EVALUATION:
            raise BadRequest(
                f"evaluationDate must be on or after {EARLIEST_EVALUATION.isoformat()}",
                msg=Msg.INVALID_EVALUATION_DATE,
            )
        return at
    return settings.today()


def _plan_msg(issue: dict[str, Any]) -> StrEnum:
    """The plan builder's message code of a per-patient outcome, else PLANNING_FAILED."""
    for coding in (issue.get("details") or {}).get("coding") or ():
        if coding.get("system") == MESSAGE_SYSTEM:
            return PlanMsg(coding["code"])
    return Msg.PLANNING_FAILED


def _strict(request: Request) -> bool:
    return request.query_params.get("strict", "false").lower() in ("1", "true", "yes")


class ApplySlots:
    """At most `limit` $apply calls per worker, their planning in worker threads: bulk work never
    runs on the event loop, so hook calls and health checks keep answering (beyond: 503)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    def __enter__(self) -> ApplySlots:
        if self.in_use >= self.limit:
            raise CdsError(
                f"{self.limit} $apply calls are in progress; retry shortly",
                msg=Msg.BUSY,
                status=503,
                code="transient",
                headers={"Retry-After": "5"},
            )
        self.in_use += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.in_use -= 1


def _slots(request: Request, limit: int) -> ApplySlots:
    slots: ApplySlots | None = getattr(request.app.state, "apply_slots", None)
    if slots is None:
        slots = request.app.state.apply_slots = ApplySlots(limit)
    return slots


@router.post("/PlanDefinition/oi-management/$apply", summary="$apply the OI PlanDefinition")
async def apply(request: Request, deps: ServicesDep) -> Response:
    slots = _slots(request, deps.settings.max_concurrent_apply)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in NDJSON_TYPES:
        # the slot is held by the stream until its last line is sent
        at = _evaluation_date(request, deps.settings)
        slot = slots.__enter__()
        lines = _stream(
            request,
            PatientStream(deps.env.planner, at, _strict(request)),
            deps.settings.apply_spool_max_bytes,
        )
        return NdjsonResponse(lines, slot)
    with slots:
        return await _apply_json(request, deps, content_type)


async def _apply_json(request: Request, deps: Any, content_type: str) -> Response:
    strict = _strict(request)
    planner = deps.env.planner
    if content_type not in JSON_TYPES:
        raise UnsupportedMediaType(
            "Content-Type must be application/fhir+json (Parameters or Bundle) or application/fhir+ndjson"
        )
    body = json_object(await read_json(request, deps.settings.max_body_bytes), "the $apply body")
    rtype = body.get("resourceType")
    if rtype == "Parameters":
        at = _evaluation_date(request, deps.settings, body)
        return await run_in_threadpool(_apply_parameters, body, at, strict, deps)
    if rtype == "Bundle":
        at = _evaluation_date(request, deps.settings)
        outcomes = await run_in_threadpool(lambda: list(plan_bundle(body, planner, at, strict=strict)))
        entries = [{"resource": o.resource} for o in outcomes]
        return fhir({"resourceType": "Bundle", "type": "collection", "entry": entries})
    raise BadRequest(f"$apply takes a Parameters or a Bundle resource, not {rtype!r}", msg=Msg.INVALID_APPLY)


def _apply_parameters(body: dict[str, Any], at: date, strict: bool, deps: Any) -> Response:
    subject = data = None
    for parameter in _parameters(body):
        if parameter.get("name") == "subject":
            reference = parameter.get("valueReference")
            if reference is not None and not isinstance(reference, dict):
                raise BadRequest(
                    "parameter 'subject' valueReference must be a Reference object", msg=Msg.INVALID_APPLY
                )
            subject = parameter.get("valueString") or (reference or {}).get("reference")
        elif parameter.get("name") == "data":
            data = parameter.get("resource")
    if not isinstance(subject, str) or not subject.startswith("Patient/"):
        raise BadRequest(
            "parameter 'subject' must be a Patient reference (Patient/<id>)", msg=Msg.INVALID_APPLY
        )
    if not isinstance(data, dict):
        raise BadRequest(
            "parameter 'data' must hold a Bundle with the patient's resources", msg=Msg.INVALID_APPLY
        )
    validate = validate_resource
    if strict:
        from services.plan_builder.strict import validate_strict

        validate = validate_strict
    with reading("parameter 'data'"):
        split = split_bundle(data, validate)
    group = next((g for g in split.groups if g.ref == subject), None)
    if group is None:
        raise BadRequest(f"parameter 'data' holds no {subject}", msg=Msg.INVALID_APPLY)
    outcome = plan_group(group, deps.env.planner, at, strict)
    if outcome.kind == "error":
        status = 422 if strict else 400
        issue = outcome.resource["issue"][0]
        raise CdsError(issue["diagnostics"], msg=_plan_msg(issue), status=status, code="processing")
    return fhir(outcome.resource)


class _Spool:
    """Answer lines on their way out, written by the reader of the request body and read by the
    sender of the response, concurrently: in memory while the client keeps up (up to 1 MB), then
    compressed on disk until it has caught up (memory stays flat either way)."""

    MEMORY = 1_000_000

    def __init__(self, limit: int) -> None:
        self.memory: list[bytes] = []
        self.in_memory = 0
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self.compress = zlib.compressobj(level=1)
        self.decompress = zlib.decompressobj()
        self.spilling = False
        self.written = self.read_at = 0  # compressed bytes on disk
        self.unsent = 0  # answer bytes not yet sent
        self.limit = limit
        self.done = False
        self.ready = asyncio.Event()

    def put(self, data: bytes) -> None:
        self.unsent += len(data)
        if not self.spilling and self.in_memory + len(data) <= self.MEMORY:
            self.memory.append(data)
            self.in_memory += len(data)
        else:
            self.spilling = True
            packed = self.compress.compress(data) + self.compress.flush(zlib.Z_SYNC_FLUSH)
            self.file.seek(self.written)
            self.file.write(packed)
            self.written += len(packed)
        self.ready.set()

    def pending(self) -> bool:
        return bool(self.memory) or self.read_at < self.written

    def take(self) -> bytes:
        if self.memory:  # what came first goes first: memory holds what preceded the spill
            data = b"".join(self.memory)
            self.memory.clear()
            self.in_memory = 0
        else:
            self.file.seek(self.read_at)
            packed = self.file.read(min(64 * 1024, self.written - self.read_at))
            self.read_at += len(packed)
            data = self.decompress.decompress(packed)
            if self.read_at == self.written:
                self.spilling = False  # caught up: back to memory
        self.unsent -= len(data)
        return data

    def close(self) -> None:
        self.file.close()


async def _stream(request: Request, stream: PatientStream, spool_limit: int) -> AsyncIterator[bytes]:
    """Lines in, one line per patient out, memory bounded by one patient.

    Answers are sent as soon as the client takes them, while the body is still being read; a
    client that writes its whole body before reading (most do) would deadlock a server that
    waits on it, so what it has not taken yet waits in a compressed spool on disk, at most
    `spool_limit` bytes of answers (past it the stream stops with a fatal line).
    """
    spool = _Spool(spool_limit)

    async def produce() -> None:
        try:
            async for line in _outcome_lines(request, stream):
                spool.put(line)
                if spool.unsent > spool.limit:
                    spool.put(ndjson_line(_spool_full(spool.limit)))
                    return
        finally:
            spool.done = True
            spool.ready.set()

    producer = asyncio.get_running_loop().create_task(produce())
    try:
        while True:
            if spool.pending():
                data = spool.take()
                if data:
                    yield data
            elif spool.done:
                break
            else:
                spool.ready.clear()
                await spool.ready.wait()
        await producer  # re-raises what the reader met
    finally:
        producer.cancel()
        spool.close()


def _spool_full(limit: int) -> dict[str, Any]:
    return operation_outcome(
        [
            {
                "severity": "fatal",
                "code": "too-costly",
                "diagnostics": f"over {limit} bytes of answers are waiting for the client to read them; "
                "stream stopped (read the answer while sending, or send fewer patients per call)",
            }
        ]
    )


async def _outcome_lines(request: Request, stream: PatientStream) -> AsyncIterator[bytes]:
    pending = b""
    number = 0
    async for chunk in request.stream():
        pending += chunk
        lines = pending.split(b"\n")
        pending = lines.pop()
        if len(pending) > MAX_LINE_BYTES:
            yield ndjson_line(_line_too_long(number + 1))
            return
        if any(len(line) > MAX_LINE_BYTES for line in lines):
            number += next(i for i, line in enumerate(lines, 1) if len(line) > MAX_LINE_BYTES)
            yield ndjson_line(_line_too_long(number))
            return
        if lines:
            # the planning runs in a worker thread: the event loop stays free for hook calls
            yield await run_in_threadpool(_feed, stream, lines, number)
            number += len(lines)
    if pending.strip():
        number += 1
        for outcome in stream.feed(pending, number):
            yield ndjson_line(outcome.resource)
    for outcome in stream.close():
        yield ndjson_line(outcome.resource)


def _feed(stream: PatientStream, lines: list[bytes], number: int) -> bytes:
    return b"".join(
        ndjson_line(outcome.resource)
        for i, line in enumerate(lines, number + 1)
        for outcome in stream.feed(line, i)
    )


def _line_too_long(number: int) -> dict[str, Any]:
    return operation_outcome(
        [
            {
                "severity": "fatal",
                "code": "too-long",
                "diagnostics": f"line {number} is over {MAX_LINE_BYTES} bytes; stream stopped",
            }
        ]
    )
