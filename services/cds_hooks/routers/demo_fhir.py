"""A read-only FHIR R4 API over the demo patients (`/demo-fhir`), demo mode only: reads,
patient searches with `_count` and `next` paging; CORS as for the rest of the service."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response

from services.cds_hooks.demo import SEARCHABLE, DemoStore
from services.cds_hooks.errors import BadRequest, Msg, NotFound
from services.cds_hooks.routers.fhir import fhir
from services.plan_builder.types import JSON

router = APIRouter(prefix="/demo-fhir", tags=["demo FHIR server"])
MAX_COUNT = 100


def _store(request: Request) -> DemoStore:
    store: DemoStore = request.app.state.demo
    return store


def _page(request: Request, resources: list[JSON]) -> Response:
    try:
        count = min(int(request.query_params.get("_count", "50")), MAX_COUNT)
        offset = int(request.query_params.get("_offset", "0"))
    except ValueError as exc:
        raise BadRequest("_count and _offset must be integers", msg=Msg.INVALID_QUERY) from exc
    if count < 1 or offset < 0:
        raise BadRequest("_count must be positive and _offset not negative", msg=Msg.INVALID_QUERY)
    chunk = resources[offset : offset + count]
    bundle: JSON = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": str(request.url)}],
        "entry": [
            {
                "fullUrl": f"{request.base_url}demo-fhir/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in chunk
        ],
    }
    if offset + count < len(resources):
        bundle["link"].append(
            {
                "relation": "next",
                "url": str(request.url.include_query_params(_offset=offset + count, _count=count)),
            }
        )
    return fhir(bundle)


@router.get("/metadata", summary="CapabilityStatement of the demo FHIR server")
async def metadata() -> Response:
    resources = [{"type": "Patient", "interaction": [{"code": "read"}, {"code": "search-type"}]}]
    resources += [
        {
            "type": t,
            "interaction": [{"code": "search-type"}],
            "searchParam": [{"name": "patient", "type": "reference"}],
        }
        for t in SEARCHABLE
    ]
    return fhir(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-11-25",
            "kind": "instance",
            "software": {"name": "OI-CDS demo FHIR server"},
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "rest": [{"mode": "server", "resource": resources}],
        }
    )


@router.get("/Patient", summary="All demo patients")
async def patients(request: Request) -> Response:
    return _page(request, list(_store(request).patients.values()))


@router.get("/Patient/{pid}", summary="Read a demo patient")
async def patient(pid: str, request: Request) -> Response:
    found = _store(request).patients.get(pid)
    if found is None:
        raise NotFound(f"no Patient/{pid}")
    return fhir(found)


@router.get("/{resource_type}", summary="A demo patient's resources (?patient=)")
async def search(resource_type: str, request: Request) -> Response:
    return _search(resource_type, request, request.query_params.get("patient", ""))


@router.post(
    "/{resource_type}/_search", summary="The same search, form-encoded (the CDS Hooks Sandbox tries it first)"
)
async def search_post(resource_type: str, request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    return _search(resource_type, request, (form.get("patient") or [""])[0])


def _search(resource_type: str, request: Request, patient: str) -> Response:
    if resource_type not in SEARCHABLE:
        raise NotFound(f"the demo server searches {', '.join(SEARCHABLE)} and Patient")
    patient_id = patient.removeprefix("Patient/")
    if not patient_id:
        raise BadRequest("search by patient: ?patient=<id>", msg=Msg.INVALID_QUERY)
    return _page(request, _store(request).search(resource_type, patient_id))
