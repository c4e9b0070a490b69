"""/knowledge and the cards' links into it (issue 14 item 3, issue 12): every card's source.url
is an absolute link to its rule's section; the icon is a 100x100 PNG; auth as /fhir."""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cds_hooks.test_auth import ES, ISS_A
from tests.cds_hooks.test_vignettes_http import SERVICE_OF, _request
from tests.conftest import load_vignettes
from tests.servers import free_port, service_command, uvicorn_server

VIGNETTES = [v for v in load_vignettes() if v["expected_keys"]]


@pytest.fixture(scope="module")
def book_page(service: str) -> str:
    response = httpx.get(service + "/knowledge", timeout=60)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    return response.text


@pytest.mark.parametrize("vignette", VIGNETTES, ids=[v["id"] for v in VIGNETTES])
def test_every_card_links_to_its_rule(vignette: dict[str, object], service: str, book_page: str) -> None:
    body, v = _request(str(vignette["id"]), with_prefetch=True)
    cards = httpx.post(f"{service}/cds-services/{SERVICE_OF[v['hook']]}", json=body, timeout=30).json()[
        "cards"
    ]
    assert cards
    anchors = set(re.findall(r'id="([^"]+)"', book_page))
    for card in cards:
        source = card["source"]
        assert source["url"] == f"{service}/knowledge#{source['topic']['code']}"
        assert source["url"].split("#", 1)[1] in anchors
        assert source["icon"] == f"{service}/static/icon.png"
        assert card["links"] == [
            {
                "label": "Rule book: this rule, its evidence and codes",
                "url": source["url"],
                "type": "absolute",
            }
        ]


def test_the_icon_is_a_100_by_100_png(service: str) -> None:
    response = httpx.get(service + "/static/icon.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    data = response.content
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (100, 100)


def _secured(folder: Path, extra: dict[str, str]) -> Iterator[str]:
    (folder / "a.json").write_text(json.dumps({"keys": [ES.jwk()]}))
    port = free_port()
    env = {
        "OI_CDS_AUTH_MODE": "required",
        "OI_CDS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "OI_CDS_TRUSTED_ISSUERS": json.dumps({ISS_A: {"jwks_file": str(folder / "a.json")}}),
        "OI_CDS_DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
        **extra,
    }
    with uvicorn_server(service_command(port), port, folder / "log.txt", env) as base:
        yield base


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _secured(tmp_path_factory.mktemp("book-closed"), {})


@pytest.fixture(scope="module")
def opened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _secured(tmp_path_factory.mktemp("book-open"), {"OI_CDS_KNOWLEDGE_OPEN": "true"})


def test_the_book_needs_the_jwt_as_fhir_does(closed: str) -> None:
    assert httpx.get(closed + "/knowledge").status_code == 401
    assert httpx.get(closed + "/fhir/metadata").status_code == 401
    token = ES.token(closed + "/knowledge", ISS_A)
    response = httpx.get(closed + "/knowledge", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert response.status_code == 200
    assert "OI-CDS rule book" in response.text
    assert httpx.get(closed + "/static/icon.png").status_code == 200  # the EHR shows it beside cards


def test_a_site_may_open_the_book_to_clinicians(opened: str) -> None:
    assert httpx.get(opened + "/knowledge", timeout=60).status_code == 200
    assert httpx.get(opened + "/fhir/metadata").status_code == 401  # nothing else opens
