"""The no-prefetch path against a FHIR server nobody here wrote: Medplum's FHIR router.

``@medplum/fhir-router`` 4.x (in memory, under tests/medplum/server.mjs, our small HTTP wrapper)
holds every shared vignette; the hooks are called with no prefetch at all and must give the
same cards as with full prefetch. Medplum matches only ``patient=Patient/<id>`` and stores the
data as written, so this is the check of the fallback's search forms on a real server. Needs
Node.js and npm (the packages are installed into tests/medplum/node_modules on first use);
skips with a message where they cannot be had.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cds_hooks.cds_rules import careplan_keys, keys_of
from tests.cds_hooks.conftest import vignette_today
from tests.cds_hooks.test_ehr_shapes_http import SERVICE_OF, request_for
from tests.conftest import load_vignettes
from tests.node_tools import npm_installed
from tests.servers import free_port, service_command, uvicorn_server

HERE = Path(__file__).parents[1] / "medplum"
VIGNETTES = load_vignettes()


@pytest.fixture(scope="module")
def medplum(stub_data: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    why = npm_installed(HERE, "@medplum/fhir-router")
    if why is not None:
        pytest.skip(f"Medplum FHIR router unavailable: {why}")
    folder = tmp_path_factory.mktemp("medplum")
    port = free_port()
    command = ["node", str(HERE / "server.mjs"), str(port), *map(str, stub_data)]
    with uvicorn_server(command, port, folder / "medplum.txt", ready="/fhir/healthz") as fhir_base:
        fhir = fhir_base + "/fhir"
        service_port = free_port()
        env = {
            "OI_CDS_DEMO": "true",
            "OI_CDS_DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
            "OI_CDS_FHIR_ALLOWLIST": fhir,
        }
        with uvicorn_server(service_command(service_port), service_port, folder / "service.txt", env) as base:
            yield {"service": base, "fhir": fhir}


def _keys(service: str, body: dict[str, Any], hook: str) -> tuple[int, set[str]]:
    response = httpx.post(f"{service}/cds-services/{SERVICE_OF[hook]}", json=body, timeout=30)
    if response.status_code != 200:
        return response.status_code, set()
    cards = response.json()
    return 200, careplan_keys(cards) if hook == "patient-view" else keys_of(cards)


def test_medplum_serves_a_typed_patient_search_and_not_a_bare_one(medplum: dict[str, str]) -> None:
    """What makes this server different from our stubs (the reason the fallback sends typed)."""
    record, _, _ = vignette_today("s03")
    pid = record["entry"][0]["resource"]["id"]
    typed = httpx.get(f"{medplum['fhir']}/Condition", params={"patient": f"Patient/{pid}"}).json()
    bare = httpx.get(f"{medplum['fhir']}/Condition", params={"patient": pid}).json()
    assert typed.get("entry")
    assert not bare.get("entry")


@pytest.mark.parametrize("vignette", VIGNETTES, ids=[v["id"] for v in VIGNETTES])
def test_no_prefetch_against_medplum_gives_the_prefetch_cards(
    vignette: dict[str, Any], medplum: dict[str, str]
) -> None:
    with_prefetch, v = request_for(vignette["id"])
    without, _ = request_for(vignette["id"], fhir_server=medplum["fhir"])
    expected = _keys(medplum["service"], with_prefetch, v["hook"])
    assert expected[0] == 200
    assert _keys(medplum["service"], without, v["hook"]) == expected
