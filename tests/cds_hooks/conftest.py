from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import load_vignettes, vignette_bundle
from tests.servers import fhir_stub_command, free_port, service_command, uvicorn_server

TODAY = date.today()
_FULL_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})")
EXAMPLE = Path(__file__).parents[2] / "fhir_profiles" / "examples" / "Bundle-example-patients.json"
SEARCH_KEYS = {
    "conditions": "Condition",
    "observations": "Observation",
    "medications": "MedicationRequest",
    "medicationStatements": "MedicationStatement",
    "serviceRequests": "ServiceRequest",
    "carePlans": "CarePlan",
}


def shift(node: Any, days: int) -> Any:
    """Move every full date (and dateTime) by `days`; partial dates stay as written."""
    if isinstance(node, dict):
        return {k: shift(v, days) for k, v in node.items()}
    if isinstance(node, list):
        return [shift(v, days) for v in node]
    if isinstance(node, str) and (m := _FULL_DATE.match(node)) and k_is_date(node):
        moved = date.fromordinal(date.fromisoformat(m.group(1)).toordinal() + days)
        return moved.isoformat() + node[10:]
    return node


def k_is_date(text: str) -> bool:
    return len(text) == 10 or text[10] == "T"


def _is_draft(resource: dict[str, Any]) -> bool:
    return any(t.get("code") == "draft-order" for t in resource.get("meta", {}).get("tag", []))


def vignette_today(vid: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """(record Bundle, draft orders, vignette) with dates moved so that today = evaluation date."""
    vignette = next(v for v in load_vignettes() if v["id"] == vid)
    days = TODAY.toordinal() - date.fromisoformat(vignette["evaluation_date"]).toordinal()
    bundle = shift(vignette_bundle(vid), days)
    drafts = [e["resource"] for e in bundle["entry"] if _is_draft(e["resource"])]
    bundle["entry"] = [e for e in bundle["entry"] if not _is_draft(e["resource"])]
    return bundle, drafts, vignette


def prefetch_of(bundle: dict[str, Any], patient_id: str) -> dict[str, Any]:
    def owner(resource: dict[str, Any]) -> str:
        return (
            str(resource.get("subject", {}).get("reference", "")).rsplit("/", 1)[-1].removeprefix("urn:uuid:")
        )

    resources = [e["resource"] for e in bundle["entry"]]
    prefetch: dict[str, Any] = {
        "patient": next(r for r in resources if r["resourceType"] == "Patient" and r["id"] == patient_id)
    }
    resources = [r for r in resources if owner(r) == patient_id]
    for key, rtype in SEARCH_KEYS.items():
        entries = [{"resource": r} for r in resources if r["resourceType"] == rtype]
        prefetch[key] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(entries),
            "entry": entries,
        }
    return prefetch


def hook_request(
    hook: str,
    patient_id: str,
    prefetch: dict[str, Any] | None = None,
    *,
    drafts: list[dict[str, Any]] | None = None,
    selections: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": "Practitioner/test", "patientId": patient_id}
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": d} for d in drafts or []]}
    if hook == "order-select":
        context["selections"] = (
            selections if selections is not None else [f"{d['resourceType']}/{d['id']}" for d in drafts or []]
        )
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": "8b2a3c4d-0000-4000-8000-000000000001",
        "context": context,
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    body.update(extra)
    return body


def example_bundle() -> dict[str, Any]:
    return copy.deepcopy(json.loads(EXAMPLE.read_text()))


@pytest.fixture(scope="session")
def stub_data(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("fhir-data")
    paths = []
    for v in load_vignettes():
        bundle, _, _ = vignette_today(v["id"])
        path = folder / f"{v['id']}.json"
        path.write_text(json.dumps(bundle))
        paths.append(path)
    paths.append(EXAMPLE)
    return paths


@pytest.fixture(scope="session")
def jwks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the FHIR stub serves key sets from (/jwks/<name>.json); tests write them."""
    return tmp_path_factory.mktemp("jwks")


@pytest.fixture(scope="session")
def fhir_stub(
    stub_data: list[Path], jwks_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    env = {"FHIR_STUB_DATA": ":".join(str(p) for p in stub_data), "FHIR_STUB_JWKS_DIR": str(jwks_dir)}
    with uvicorn_server(
        fhir_stub_command(port), port, tmp_path_factory.mktemp("stub") / "log.txt", env
    ) as base:
        yield base + "/fhir"


@pytest.fixture(scope="session")
def service(fhir_stub: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("service")
    port = free_port()
    env = {
        "OI_CDS_DEMO": "true",
        "OI_CDS_DATABASE_URL": f"sqlite:///{folder / 'feedback.sqlite3'}",
        "OI_CDS_FHIR_ALLOWLIST": fhir_stub,
        "OI_CDS_FHIR_TIMEOUT_S": "1",
        "OI_CDS_MAX_BODY_BYTES": "2000000",
    }
    with uvicorn_server(service_command(port), port, folder / "log.txt", env) as base:
        yield base
