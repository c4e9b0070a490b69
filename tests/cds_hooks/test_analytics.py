"""Feedback analytics (issue 12, item 2): cards shown (counted on the hot path, no patient data),
accepted and overridden by reason, per week; the numbers equal those computed directly from
the stored rows, on SQLite through a real uvicorn and on PostgreSQL; the page in Chromium."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select

from services.cds_hooks import reports
from services.cds_hooks.db import feedback, make_engine, migrate
from services.cds_hooks.events import EventSink
from services.cds_hooks.models import Feedback
from services.cds_hooks.store import FeedbackStore
from tests.cds_hooks.test_browser import browser  # noqa: F401  (the Chromium fixture)
from tests.cds_hooks.test_operations import postgres_url  # noqa: F401  (a fresh PostgreSQL database)
from tests.cds_hooks.test_vignettes_http import SERVICE_OF, _request
from tests.conftest import load_vignettes
from tests.servers import demo_service

VIGNETTES = [v for v in load_vignettes() if v["expected_keys"]]
REASON = "https://oi-cds.example.org/CodeSystem/oi-override-reason"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Counter[tuple[str, str]]]]:
    """A demo service with every vignette's cards shown once; the first card of each accepted
    (when it has a suggestion), the others overridden (with a reason where the card offers one)."""
    folder = tmp_path_factory.mktemp("analytics")
    with demo_service(folder, {"OI_CDS_EVENTS_FLUSH_S": "60"}) as base:
        shown: Counter[tuple[str, str]] = Counter()
        for vignette in VIGNETTES:
            body, v = _request(vignette["id"], with_prefetch=True)
            service = SERVICE_OF[v["hook"]]
            cards = httpx.post(f"{base}/cds-services/{service}", json=body, timeout=30).json()["cards"]
            items = []
            for i, card in enumerate(cards):
                shown[(service, card["source"]["topic"]["code"])] += 1
                item: dict[str, Any] = {"card": card["uuid"], "outcomeTimestamp": "2026-11-25T10:00:00Z"}
                if i == 0 and card.get("suggestions"):
                    item["outcome"] = "accepted"
                    item["acceptedSuggestions"] = [{"id": card["suggestions"][0]["uuid"]}]
                else:
                    item["outcome"] = "overridden"
                    if card.get("overrideReasons"):
                        reason = card["overrideReasons"][0]
                        item["overrideReason"] = {
                            "reason": {"system": reason["system"], "code": reason["code"]}
                        }
                items.append(item)
            if items:
                answer = httpx.post(
                    f"{base}/cds-services/{service}/feedback", json={"feedback": items}, timeout=30
                )
                assert answer.status_code == 200, answer.text
        yield base, folder / "db.sqlite3", shown


def _direct(database: Path) -> dict[tuple[str, str, str], int]:
    """The stored feedback counted straight from the table."""
    engine = create_engine(f"sqlite:///{database}")
    counts: Counter[tuple[str, str, str]] = Counter()
    with engine.connect() as connection:
        for service, key, outcome, reason in connection.execute(
            select(
                feedback.c.service_id,
                feedback.c.recommendation_key,
                feedback.c.outcome,
                feedback.c.override_code,
            )
        ):
            counts[(service, key, outcome)] += 1
            if outcome == "overridden":
                counts[(service, key, f"reason:{reason or 'none given'}")] += 1
    engine.dispose()
    return counts


def test_the_numbers_equal_the_stored_feedback_and_the_cards_returned(
    seeded: tuple[str, Path, Counter[tuple[str, str]]],
) -> None:
    base, database, shown = seeded
    data = httpx.get(base + "/admin/analytics.json", timeout=30).json()
    direct = _direct(database)
    got: Counter[tuple[str, str, str]] = Counter()
    got_shown: Counter[tuple[str, str]] = Counter()
    for row in data["rows"]:
        got_shown[(row["service"], row["recommendation"])] += row["shown"]
        got[(row["service"], row["recommendation"], "accepted")] += row["accepted"]
        got[(row["service"], row["recommendation"], "overridden")] += row["overridden"]
        for reason, n in row["overrideReasons"].items():
            got[(row["service"], row["recommendation"], f"reason:{reason}")] += n
    assert got_shown == shown
    assert +got == +Counter(direct)
    assert data["totals"]["shown"] == sum(shown.values())
    assert data["weeks"] == sorted({reports.week_of(date(2026, 11, 25)), reports.week_of(datetime.now(UTC))})


def test_the_csv_is_the_json(seeded: tuple[str, Path, Counter[tuple[str, str]]]) -> None:
    base, _, _ = seeded
    data = httpx.get(base + "/admin/analytics.json", timeout=30).json()
    response = httpx.get(base + "/admin/analytics.csv", timeout=30)
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [
        (r["week"], r["recommendation"], int(r["shown"]), int(r["accepted"]), int(r["overridden"]))
        for r in rows
    ] == [(r["week"], r["recommendation"], r["shown"], r["accepted"], r["overridden"]) for r in data["rows"]]


def test_a_bad_since_is_a_400(seeded: tuple[str, Path, Counter[tuple[str, str]]]) -> None:
    base, _, _ = seeded
    response = httpx.get(base + "/admin/analytics.json", params={"since": "last tuesday"})
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    later = httpx.get(base + "/admin/analytics.json", params={"since": "2100-01-01"}).json()
    assert later["rows"] == []


def test_the_page_shows_the_charts_and_the_numbers(
    browser: Any,  # noqa: F811
    seeded: tuple[str, Path, Counter[tuple[str, str]]],
) -> None:
    base, _, shown = seeded
    data = httpx.get(base + "/admin/analytics.json", timeout=30).json()
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(base + "/admin/analytics")
    assert page.inner_text("#total-shown") == str(sum(shown.values()))
    assert page.inner_text("#total-accepted") == str(data["totals"]["accepted"])
    bars = page.locator("svg.chart rect[data-series]")
    assert bars.count() == 3 * len(data["weeks"])
    by_series: Counter[str] = Counter()
    for i in range(bars.count()):
        bar = bars.nth(i)
        by_series[bar.get_attribute("data-series") or ""] += int(bar.get_attribute("data-value") or 0)
        assert bar.bounding_box() is not None  # drawn, not just in the markup
    assert dict(by_series) == data["totals"]
    table = page.locator("table.by-recommendation tr").all_inner_texts()
    assert any(r.startswith("oi-order-select\torder-not-approved") for r in table)
    page.screenshot(path=str(Path(__file__).parents[2] / "docs" / "img" / "analytics.png"), full_page=True)
    page.close()


def test_postgresql_gives_the_same_numbers(postgres_url: str) -> None:  # noqa: F811
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    try:
        store = FeedbackStore(engine, ["fracture-care", "order-not-approved"])
        sink = EventSink(engine, b"k" * 32)
        day = date(2026, 11, 25)
        sink.shown(day, "oi-management", ["careplan-summary", "fracture-care", "fracture-care"])
        sink.flush()
        sink.shown(day, "oi-management", ["fracture-care"])  # a second flush adds up
        sink.flush()
        items = [
            Feedback.model_validate(
                {"card": f"c{i}", "outcome": outcome, "outcomeTimestamp": "2026-11-26T08:00:00Z", **extra}
            )
            for i, (outcome, extra) in enumerate(
                list[tuple[str, dict[str, Any]]](
                    [
                        ("accepted", {"acceptedSuggestions": [{"id": "s1"}]}),
                        (
                            "overridden",
                            {"overrideReason": {"reason": {"system": REASON, "code": "patient-declined"}}},
                        ),
                        ("overridden", {}),
                    ]
                )
            )
        ]
        store._record("oi-management", items)
        data = reports.analytics(engine)
        (row_unknown,) = [r for r in data["rows"] if r["recommendation"] == "unknown"]  # ids not ours
        assert (row_unknown["accepted"], row_unknown["overridden"]) == (1, 2)
        assert row_unknown["overrideReasons"] == {"patient-declined": 1, "none given": 1}
        shown = {r["recommendation"]: r["shown"] for r in data["rows"] if r["shown"]}
        assert shown == {"careplan-summary": 1, "fracture-care": 3}
        sink.would_show(day, "oi-order-sign", "patient-1", [("order-not-approved", "warning")])
        sink.flush()
        report = reports.shadow_report(engine)
        assert report["orderSign"]["withAWarning"] == 1
        assert report["patients"] == 1
    finally:
        engine.dispose()
