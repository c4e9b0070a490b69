"""A small FHIR R4 server for the fallback tests: reads and paged searches over test data.

Patients whose id starts with a behaviour name misbehave: ``status-<code>-...`` answers that
HTTP status, ``slow-...`` answers after 3 s, ``badjson-...`` sends broken JSON, ``huge-...``
sends a 12 MB body, ``wrongtype-...`` answers a search with a Patient.

``FHIR_STUB_PATIENT_FORM`` says which ``patient=`` forms a search matches, as servers differ:
``both`` (default), ``typed`` (only ``Patient/<id>``; a bare id matches nothing, as Medplum),
``bare`` (only ``<id>``; a typed reference is refused with 400). ``FHIR_STUB_IGNORE_PATIENT=1``
ignores the parameter and answers every patient's resources, as a server that does not support it.
``FHIR_STUB_CANONICAL=exact`` matches ``instantiates-canonical`` as an exact string (versioned or
not), as some servers do. ``PUT /fhir/{type}/{id}`` stores a resource.
``FHIR_STUB_LATENCY_MS`` delays every answer (a server far away or busy);
``FHIR_STUB_SLOW_TYPES`` (comma-separated resource types) answers those searches after 3 s.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DATA: dict[str, dict[str, Any]] = {}  # id -> resource
SEEN: list[dict[str, str | None]] = []
LATENCY_S = float(os.environ.get("FHIR_STUB_LATENCY_MS", "0")) / 1000
SLOW_TYPES = set(filter(None, os.environ.get("FHIR_STUB_SLOW_TYPES", "").split(",")))


def load(path: Path) -> None:
    bundle = json.loads(path.read_text())
    for entry in bundle["entry"]:
        resource = entry["resource"]
        DATA[f"{resource['resourceType']}/{resource['id']}"] = resource


for file in os.environ.get("FHIR_STUB_DATA", "").split(os.pathsep):
    if file:
        load(Path(file))


def _patient_of(resource: dict[str, Any]) -> str:
    ref = (resource.get("subject") or resource.get("patient") or {}).get("reference", "")
    return str(ref).rsplit("/", 1)[-1].removeprefix("urn:uuid:")


def _misbehave(patient_id: str) -> Response | None:
    if patient_id.startswith("status-"):
        return JSONResponse(
            {"resourceType": "OperationOutcome", "issue": []}, status_code=int(patient_id.split("-")[1])
        )
    if patient_id.startswith("badjson-"):
        return Response(b'{"resourceType": "Bundle", ', media_type="application/fhir+json")
    if patient_id.startswith("huge-"):
        return Response(
            b'{"resourceType": "Bundle", "x": "' + b"a" * 12_000_000 + b'"}',
            media_type="application/fhir+json",
        )
    if patient_id.startswith("wrongtype-"):
        return JSONResponse({"resourceType": "Patient", "id": patient_id})
    return None


async def read(request: Request) -> Response:
    rtype, rid = request.path_params["type"], request.path_params["id"]
    SEEN.append({"path": request.url.path, "authorization": request.headers.get("authorization")})
    await asyncio.sleep(LATENCY_S)
    if rid.startswith("slow-"):
        await asyncio.sleep(3)
    if (bad := _misbehave(rid)) is not None and rtype == "Patient" and not rid.startswith("wrongtype-"):
        return bad
    resource = DATA.get(f"{rtype}/{rid}")
    if resource is None:
        return JSONResponse(
            {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]},
            status_code=404,
        )
    return JSONResponse(resource, media_type="application/fhir+json")


PATIENT_FORM = os.environ.get("FHIR_STUB_PATIENT_FORM", "both")
IGNORE_PATIENT = os.environ.get("FHIR_STUB_IGNORE_PATIENT") == "1"


def _wanted_patient(raw: str) -> str | Response | None:
    typed = raw.startswith("Patient/")
    if typed and PATIENT_FORM == "bare":
        return JSONResponse(
            {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid"}]},
            status_code=400,
        )
    if not typed and PATIENT_FORM == "typed":
        return None  # matches nothing
    return raw.removeprefix("Patient/")


CANONICAL_EXACT = os.environ.get("FHIR_STUB_CANONICAL") == "exact"


async def update(request: Request) -> Response:
    """PUT a resource (tests store what the service proposed, as an EHR would)."""
    resource = await request.json()
    DATA[f"{request.path_params['type']}/{request.path_params['id']}"] = resource
    return JSONResponse(resource, media_type="application/fhir+json")


def _canonical_matches(resource: dict[str, Any], wanted: str | None) -> bool:
    """instantiates-canonical: exact string match when FHIR_STUB_CANONICAL=exact, as some servers do."""
    if wanted is None:
        return True
    have = resource.get("instantiatesCanonical") or []
    if CANONICAL_EXACT:
        return wanted in have
    return any(c.split("|", 1)[0] == wanted.split("|", 1)[0] for c in have)


async def search(request: Request) -> Response:
    rtype = request.path_params["type"]
    wanted = _wanted_patient(request.query_params.get("patient", ""))
    if isinstance(wanted, Response):
        return wanted
    patient_id = wanted or ""
    SEEN.append({"path": request.url.path, "authorization": request.headers.get("authorization")})
    await asyncio.sleep(3 if rtype in SLOW_TYPES else LATENCY_S)
    if patient_id.startswith("slow-"):
        await asyncio.sleep(3)
    if (bad := _misbehave(patient_id)) is not None:
        return bad
    matches = [
        r
        for key, r in DATA.items()
        if key.startswith(rtype + "/")
        and wanted is not None
        and (IGNORE_PATIENT or _patient_of(r) == patient_id)
        and _canonical_matches(r, request.query_params.get("instantiates-canonical"))
        and (
            request.query_params.get("status") is None
            or r.get("status") in request.query_params["status"].split(",")
        )
    ]
    count = int(request.query_params.get("_count", "2"))
    page = int(request.query_params.get("_page", "0"))
    chunk = matches[page * count : (page + 1) * count]
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(matches),
        "entry": [{"resource": r} for r in chunk],
    }
    if (page + 1) * count < len(matches):
        query = dict(request.query_params)
        query.update(_page=str(page + 1), _count=str(count))
        bundle["link"] = [{"relation": "next", "url": str(request.url.replace_query_params(**query))}]
    return JSONResponse(bundle, media_type="application/fhir+json")


async def jwks(request: Request) -> Response:
    folder = os.environ.get("FHIR_STUB_JWKS_DIR", "")
    path = Path(folder) / f"{request.path_params['name']}.json"
    if not folder or not path.is_file():
        return JSONResponse({"error": "not found"}, status_code=404)
    return Response(path.read_bytes(), media_type="application/json")


async def seen(_: Request) -> Response:
    return JSONResponse(SEEN)


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/_seen", seen),
        Route("/jwks/{name}.json", jwks),
        Route("/fhir/{type}/{id}", read),
        Route("/fhir/{type}/{id}", update, methods=["PUT"]),
        Route("/fhir/{type}", search),
    ]
)
