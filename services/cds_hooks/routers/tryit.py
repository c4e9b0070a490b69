"""The try-it page (demo mode): pick a demo patient, fire the hooks, see the cards."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from services.cds_hooks.demo import DemoStore
from services.cds_hooks.deps import ServicesDep
from services.cds_hooks.errors import NotFound
from services.cds_hooks.routers.services import json_response

router = APIRouter(tags=["try it (demo)"])
PAGE = Path(__file__).parent.parent / "static" / "index.html"
SHOWN = (
    "oi",
    "severity",
    "ageUnder18",
    "skeletallyImmature",
    "functionalStatus",
    "recentLongBoneFracture",
    "recurrentLongBoneFractures",
    "longBoneBowing",
    "spineDeformity",
    "activeBisphosphonate",
    "boneSize",
)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))


@router.get("/demo/patients", summary="The demo patients with a one-line summary")
async def patients(request: Request) -> Response:
    store: DemoStore = request.app.state.demo
    return json_response(
        [
            {
                "id": pid,
                "name": " ".join([*p["name"][0]["given"], p["name"][0]["family"]]),
                "summary": store.summaries[pid],
            }
            for pid, p in store.patients.items()
        ]
    )


@router.get("/demo/facts/{pid}", summary="What the service reads from a demo patient's record")
async def facts(pid: str, request: Request, deps: ServicesDep) -> Response:
    store: DemoStore = request.app.state.demo
    patient = store.patients.get(pid)
    if patient is None:
        raise NotFound(f"no demo patient {pid}")
    resources = [r for rtype in store.resources for r in store.search(rtype, pid)]
    at = deps.settings.today()
    found = deps.env.planner.facts(patient, resources, at, f"Patient/{pid}")
    return json_response(
        {
            "evaluationDate": at.isoformat(),
            "facts": [found.describe(name) for name in SHOWN if name in found.specs],
            "fractures": [
                {"bone": f.bone, "onset": str(f.onset) if f.onset else None} for f in found.fractures
            ],
        }
    )
