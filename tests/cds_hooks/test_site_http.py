"""A service started on the worked example site directory (OI_CDS_SITE_DIR), over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cds_hooks.conftest import SEARCH_KEYS
from tests.cds_hooks.test_ehr_shapes_http import call, prefetch_from, request_for
from tests.conftest import load_vignettes
from tests.servers import demo_service, free_port
from tests.shapes import SITE, SITE_DIR, site_codes

ROOT = Path(__file__).parents[2]
VIGNETTES = load_vignettes()


@pytest.fixture(scope="module")
def site_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with demo_service(
        tmp_path_factory.mktemp("site-service"), {"OI_CDS_SITE_DIR": str(ROOT / SITE_DIR)}
    ) as base:
        yield base


def test_discovery_asks_for_the_codes_the_site_uses(site_service: str, service: str) -> None:
    observations = next(
        s["prefetch"]["observations"] for s in httpx.get(site_service + "/cds-services").json()["services"]
    )
    for code in ("FLO-7001", "FLO-7002", "FLO-7003", "FLO-7004"):
        assert f"{SITE}.1|{code}" in observations
    default = next(
        s["prefetch"]["observations"] for s in httpx.get(service + "/cds-services").json()["services"]
    )
    assert SITE not in default


def test_the_fhir_face_serves_the_site_maps(site_service: str, service: str) -> None:
    maps = httpx.get(site_service + "/fhir/ConceptMap").json()
    assert [e["resource"]["id"] for e in maps["entry"]] == ["example-site"]
    assert httpx.get(site_service + "/fhir/ConceptMap/example-site").json()["resourceType"] == "ConceptMap"
    assert httpx.get(service + "/fhir/ConceptMap").json()["total"] == 0


@pytest.mark.parametrize("vignette", VIGNETTES, ids=[v["id"] for v in VIGNETTES])
def test_a_record_in_the_sites_codes_gets_the_cards_of_the_clean_record(
    vignette: dict[str, object], site_service: str, service: str
) -> None:
    clean, v = request_for(str(vignette["id"]))
    local = dict(clean)
    record = {"resourceType": "Bundle", "entry": [{"resource": clean["prefetch"]["patient"]}]}
    for key in SEARCH_KEYS:
        record["entry"] += clean["prefetch"][key]["entry"]
    local["prefetch"] = prefetch_from(site_codes(record))
    assert call(site_service, local, v["hook"]) == call(service, clean, v["hook"])


def test_check_site_reports_a_good_and_a_broken_directory(tmp_path: Path) -> None:
    good = subprocess.run(
        [sys.executable, "-m", "services.cli", "check-site", str(ROOT / SITE_DIR)],
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, good.stderr
    assert f"{SITE}.1|FLO-7001" in good.stdout
    assert "Every fact the rules read from Observations can be had at this site." in good.stdout
    (tmp_path / "map.json").write_text(
        (ROOT / SITE_DIR / "ConceptMap-example-site.json")
        .read_text()
        .replace('"ambulatory-status"', '"walking"', 1)
    )
    broken = subprocess.run(
        [sys.executable, "-m", "services.cli", "check-site", str(tmp_path)], capture_output=True, text=True
    )
    assert broken.returncode == 2
    assert "is not a project concept" in broken.stderr
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "map.json").write_text(
        (ROOT / SITE_DIR / "ConceptMap-example-site.json").read_text().replace("FLO-7003", "FLO-7003-x")
    )
    ok = subprocess.run(
        [sys.executable, "-m", "services.cli", "check-site", str(partial)], capture_output=True, text=True
    )
    assert ok.returncode == 0
    assert "Unobtainable" not in ok.stdout  # renaming a local code still maps something
    unmapped = tmp_path / "unmapped"
    unmapped.mkdir()
    cmap = json.loads((ROOT / SITE_DIR / "ConceptMap-example-site.json").read_text())
    cmap["group"][0]["element"] = [e for e in cmap["group"][0]["element"] if e["code"] != "FLO-7003"]
    (unmapped / "map.json").write_text(json.dumps(cmap))
    gaps = subprocess.run(
        [sys.executable, "-m", "services.cli", "check-site", str(unmapped)], capture_output=True, text=True
    )
    assert gaps.returncode == 0
    assert (
        "bone size (medullary canal diameter): no local code is mapped to medullary-canal-diameter"
        in gaps.stdout
    )


def test_the_service_refuses_to_start_on_a_broken_site_directory(tmp_path: Path) -> None:
    (tmp_path / "map.json").write_text('{"resourceType": "ValueSet"}')
    run = subprocess.run(
        [sys.executable, "-m", "services.cli", "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        env={**os.environ, "OI_CDS_SITE_DIR": str(tmp_path), "OI_CDS_DEMO": "true"},
        timeout=60,
    )
    assert run.returncode == 2
    assert "ConceptMaps only" in run.stderr
