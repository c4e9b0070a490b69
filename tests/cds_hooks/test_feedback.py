"""Feedback (F1-F5): stored before the answer, idempotent, readable per recommendation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.cds_hooks.conftest import example_bundle, hook_request, prefetch_of

PID = "oi-type-iii-child"


def _cards(service: str) -> list[dict[str, Any]]:
    body = hook_request("patient-view", PID, prefetch_of(example_bundle(), PID))
    cards: list[dict[str, Any]] = httpx.post(f"{service}/cds-services/oi-management", json=body).json()[
        "cards"
    ]
    return cards


def _feedback(service: str, items: Any, service_id: str = "oi-management") -> httpx.Response:
    return httpx.post(
        f"{service}/cds-services/{service_id}/feedback",
        json={"feedback": items} if isinstance(items, list) else items,
    )


def _summary(service: str, **params: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{service}/admin/feedback", params=params).json()
    return body


def _count(summary: dict[str, Any], **match: str) -> int:
    return sum(g["count"] for g in summary["groups"] if all(g.get(k) == v for k, v in match.items()))


def test_feedback_round_trip(service: str) -> None:
    cards = _cards(service)
    summary_card = cards[0]
    accepted = {
        "card": summary_card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": summary_card["suggestions"][0]["uuid"]}],
        "outcomeTimestamp": "2026-11-25T10:05:31.123Z",
    }  # F5 fractional seconds
    before = _summary(service)
    response = _feedback(service, [accepted])
    assert response.status_code == 200  # F1
    assert response.json() == {"received": 1, "stored": 1}
    again = _feedback(service, [accepted])
    assert again.status_code == 200  # F4: idempotent
    assert again.json()["stored"] == 0
    after = _summary(service)
    assert after["total"] == before["total"] + 1
    assert _count(after, recommendation="careplan-summary", outcome="accepted") >= 1


def test_overrides_with_and_without_reason(service: str) -> None:
    cards = _cards(service)
    own = cards[0]
    items = [
        {"card": own["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-25T11:00:00Z"},
        {
            "card": own["uuid"],
            "outcome": "overridden",
            "outcomeTimestamp": "2026-11-25T11:00:01Z",
            "overrideReason": {"reason": {"code": "other"}},
        },  # F3: sandbox shape, no system/display
        {
            "card": own["uuid"],
            "outcome": "overridden",
            "outcomeTimestamp": "2026-11-25T11:00:02Z",
            "overrideReason": {"userComment": "discussed with family"},
        },
    ]
    assert _feedback(service, items).json() == {"received": 3, "stored": 3}
    summary = _summary(service, since="2026-11-25T10:59:00Z")
    assert _count(summary, outcome="overridden", overrideReason="other") == 1
    assert "discussed with family" not in str(summary)


@pytest.mark.parametrize(
    "body",
    [
        {"feedback": {"card": "x"}},
        {"notFeedback": []},
        {"feedback": [{"outcome": "accepted", "outcomeTimestamp": "2026-11-25T10:00:00Z"}]},
        {"feedback": [{"card": "c", "outcomeTimestamp": "2026-11-25T10:00:00Z"}]},
        {"feedback": [{"card": "c", "outcome": "accepted"}]},
        {"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-11-25T10:00:00Z"}]},
        {"feedback": [{"card": "c", "outcome": "ignored", "outcomeTimestamp": "2026-11-25T10:00:00Z"}]},
        {"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "yesterday"}]},
        [1, 2],
    ],
)
def test_malformed_feedback_is_400(service: str, body: Any) -> None:
    response = httpx.post(f"{service}/cds-services/oi-management/feedback", json=body)
    assert response.status_code == 400  # F2
    assert response.json()["resourceType"] == "OperationOutcome"


def test_feedback_for_unknown_service_is_404(service: str) -> None:
    assert _feedback(service, [], "nope").status_code == 404


def test_admin_rejects_bad_since(service: str) -> None:
    assert httpx.get(f"{service}/admin/feedback", params={"since": "last week"}).status_code == 400
    assert httpx.get(f"{service}/admin/feedback", params={"since": "2026-01-01"}).status_code == 200


def test_readyz_and_healthz(service: str) -> None:
    assert httpx.get(f"{service}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{service}/readyz").json()
    assert ready["status"] == "ready"
    assert ready["actions"] == 16
