"""Text that came from the record reaches card Markdown inert (the sandbox renders raw HTML)."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.cds_hooks.cds_rules import assert_conformant_response
from tests.cds_hooks.conftest import example_bundle, hook_request, prefetch_of

PAYLOADS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click me](javascript:alert(1))",
    "**bold** _x_ `code` | table |",
    "https://evil.example/login",
    "www.evil.example",
    "HTTP://EVIL.EXAMPLE",
    "mail me: someone@evil.example",
    "~~struck~~",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_record_text_is_escaped_in_card_detail(service: str, payload: str) -> None:
    prefetch = prefetch_of(example_bundle(), "oi-type-iii-child")
    # a canal measurement in an unknown unit is noted, with the unit as the record wrote it
    prefetch["observations"]["entry"].append(
        {
            "resource": {
                "resourceType": "Observation",
                "id": "evil-unit",
                "status": "final",
                "code": {
                    "coding": [
                        {
                            "system": "https://oi-cds.example.org/CodeSystem/oi-observation",
                            "code": "medullary-canal-diameter",
                        }
                    ],
                    "text": payload,
                },
                "valueQuantity": {"value": 3.0, "unit": payload},
                "effectiveDateTime": "2026-01-01",
                "subject": {"reference": "Patient/oi-type-iii-child"},
            }
        }
    )
    prefetch["conditions"]["entry"][0]["resource"]["code"]["text"] = payload
    response = httpx.post(
        service + "/cds-services/oi-management",
        json=hook_request("patient-view", "oi-type-iii-child", prefetch),
    )
    assert response.status_code == 200
    body = response.json()
    assert_conformant_response(body)  # includes: no raw HTML tag in any detail
    detail = body["cards"][0]["detail"]
    assert "is not mm or cm" in detail  # the note is there...
    assert payload not in detail  # ...but not as live Markdown/HTML
    assert "<" not in detail
    assert not re.search(r"(?<!\\)\]\(", detail)  # no unescaped link syntax
    assert not re.search(r"(?i)(?<!\\)(https?:|www\.)", detail.replace("https://oi-cds.example.org", ""))
    assert not re.search(r"(?<!\\)[~@]", detail)
