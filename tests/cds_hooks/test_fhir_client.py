"""The FHIR fallback client against a remote server stood in for by respx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from services.cds_hooks.fhir_client import FhirClient, FhirFetchError, allowed

BASE = "https://ehr.example.org/fhir"


@pytest.fixture
async def client() -> AsyncIterator[FhirClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.5), follow_redirects=False) as http:
        yield FhirClient(http, [BASE], max_pages=3, max_bytes=50_000)


def _bundle(*ids: str, next_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": {"resourceType": "Condition", "id": i}} for i in ids],
    }
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://ehr.example.org/fhir", True),
        ("https://ehr.example.org/fhir/Condition?patient=1", True),
        ("https://EHR.example.org:443/fhir/Patient/1", True),
        ("http://ehr.example.org/fhir", False),
        ("https://ehr.example.org:8443/fhir", False),
        ("https://ehr.example.org/fhirx", False),
        ("https://ehr.example.org.evil.com/fhir", False),
        ("https://evil.com/fhir?x=https://ehr.example.org/fhir", False),
        ("not a url", False),
    ],
)
def test_allowlist_matches_scheme_host_port_and_path(url: str, ok: bool) -> None:
    assert allowed(url, [BASE]) is ok


@pytest.mark.anyio
@respx.mock
async def test_search_follows_pages_and_sends_the_token(client: FhirClient) -> None:
    first = respx.get(f"{BASE}/Condition", params={"patient": "p1"}).respond(
        json=_bundle("a", next_url=f"{BASE}/Condition?page=2")
    )
    second = respx.get(f"{BASE}/Condition", params={"page": "2"}).respond(json=_bundle("b"))
    found = await client.search(BASE, "Condition?patient=p1", "tok", "Condition")
    assert [r["id"] for r in found] == ["a", "b"]
    assert first.calls[0].request.headers["authorization"] == "Bearer tok"
    assert second.calls[0].request.headers["authorization"] == "Bearer tok"


@pytest.mark.anyio
@respx.mock
async def test_page_bound(client: FhirClient) -> None:
    respx.get(f"{BASE}/Condition").respond(json=_bundle("a", next_url=f"{BASE}/Condition?again=1"))
    with pytest.raises(FhirFetchError, match="more than 3 pages"):
        await client.search(BASE, "Condition?patient=p1", None, "Condition")


@pytest.mark.anyio
@respx.mock
async def test_next_link_to_another_host_is_not_followed(client: FhirClient) -> None:
    respx.get(f"{BASE}/Condition").respond(json=_bundle("a", next_url="https://evil.com/steal"))
    evil = respx.get("https://evil.com/steal").respond(json=_bundle("x"))
    with pytest.raises(FhirFetchError, match="outside the allow-listed server"):
        await client.search(BASE, "Condition?patient=p1", "tok", "Condition")
    assert not evil.called


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("response", "words"),
    [
        (httpx.Response(401), "HTTP 401"),
        (httpx.Response(404), "HTTP 404"),
        (httpx.Response(500), "HTTP 500"),
        (httpx.Response(302, headers={"location": "https://evil.com/"}), "HTTP 302"),
        (httpx.Response(200, content=b"<html>"), "not JSON"),
        (httpx.Response(200, json=[1, 2]), "not a FHIR resource"),
        (httpx.Response(200, json={"resourceType": "Patient"}), "not a Bundle"),
        (httpx.Response(200, json={"resourceType": "OperationOutcome", "issue": []}), "OperationOutcome"),
        (httpx.Response(200, content=b'{"resourceType":"Bundle","x":"' + b"a" * 60_000 + b'"}'), "exceeded"),
    ],
)
@respx.mock
async def test_failures_are_reported_without_data(
    client: FhirClient, response: httpx.Response, words: str
) -> None:
    respx.get(f"{BASE}/Condition").mock(return_value=response)
    with pytest.raises(FhirFetchError, match=words):
        await client.search(BASE, "Condition?patient=p1", "tok", "Condition")


@pytest.mark.anyio
@respx.mock
async def test_timeout_and_connection_errors(client: FhirClient) -> None:
    respx.get(f"{BASE}/Patient/p1").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(FhirFetchError, match="timed out"):
        await client.get(BASE, "Patient/p1", None)
    respx.get(f"{BASE}/Patient/p2").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(FhirFetchError, match="could not be reached"):
        await client.get(BASE, "Patient/p2", None)


@pytest.mark.anyio
@respx.mock
async def test_wrong_resource_types_in_a_search_are_dropped(client: FhirClient) -> None:
    bundle = _bundle("a")
    bundle["entry"].append({"resource": {"resourceType": "Observation", "id": "o"}})
    respx.get(f"{BASE}/Condition").respond(json=bundle)
    assert [r["id"] for r in await client.search(BASE, "Condition?patient=p1", None, "Condition")] == ["a"]


@pytest.mark.anyio
async def test_server_off_the_allowlist_is_refused(client: FhirClient) -> None:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.get("https://evil.com/fhir/Patient/1").respond(json={"resourceType": "Patient"})
        with pytest.raises(FhirFetchError):
            await client.get("https://evil.com/fhir", "Patient/1", "tok")
        assert not route.called
    assert not client.usable("https://evil.com/fhir")
    assert not client.usable(None)


@pytest.mark.anyio
@respx.mock
async def test_entry_bound() -> None:
    async with httpx.AsyncClient() as http:
        small = FhirClient(http, [BASE], max_pages=3, max_bytes=50_000, max_entries=2)
        respx.get(f"{BASE}/Condition").respond(json=_bundle("a", "b", "c"))
        with pytest.raises(FhirFetchError, match="more than 2 entries"):
            await small.search(BASE, "Condition?patient=p1", None, "Condition")
