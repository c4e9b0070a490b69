"""SQLite as the service meets it: uvicorn's workers each run the lifespan, so each migrates;
an in-memory database is shared by the threads of its process."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import sqlite3
from pathlib import Path

import httpx

from services.cds_hooks.db import migrate
from services.cds_hooks.examples import patient_view_example
from tests.servers import demo_service

WORKERS = 4


def _migrate(
    url: str, barrier: multiprocessing.synchronize.Barrier, errors: multiprocessing.Queue[str]
) -> None:
    barrier.wait()
    try:
        migrate(url)
    except Exception as exc:  # reported to the test, which names it
        errors.put(f"{type(exc).__name__}: {exc}")


def test_workers_migrating_a_new_file_at_once_all_start(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for round_ in range(3):
        database = tmp_path / f"round-{round_}.sqlite3"
        barrier, errors = context.Barrier(WORKERS), context.Queue()
        workers = [
            context.Process(target=_migrate, args=(f"sqlite:///{database}", barrier, errors))
            for _ in range(WORKERS)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert [w.exitcode for w in workers] == [0] * WORKERS
        found = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
        assert found == [], f"a worker failed to migrate: {found}"
        tables = {r[0] for r in sqlite3.connect(database).execute("select name from sqlite_master")}
        assert {"alembic_version", "service_secret"} <= tables


def test_an_in_memory_database_keeps_feedback_and_card_counts(tmp_path: Path) -> None:
    """sqlite:// (nothing kept after a restart) is one database for the whole process: feedback
    and card counts are written from worker threads, which once each saw an empty database of
    their own (the feedback POST and the analytics report were a 500)."""
    with demo_service(tmp_path, {"OI_CDS_DATABASE_URL": "sqlite://"}) as base:
        body = patient_view_example()
        cards = httpx.post(f"{base}/cds-services/oi-management", json=body, timeout=30).json()["cards"]
        summary = cards[0]
        item = {
            "card": summary["uuid"],
            "outcome": "accepted",
            "outcomeTimestamp": "2026-12-04T10:00:00Z",
            "acceptedSuggestions": [{"id": summary["suggestions"][0]["uuid"]}],
        }
        answer = httpx.post(
            f"{base}/cds-services/oi-management/feedback", json={"feedback": [item]}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        report = httpx.get(f"{base}/admin/analytics.json", timeout=30)
        assert report.status_code == 200, report.text
        rows = {row["recommendation"]: row for row in report.json()["rows"]}
        assert rows["careplan-summary"]["shown"] == 1
        assert rows["careplan-summary"]["accepted"] == 1
        assert sum(row["shown"] for row in rows.values()) == len(cards)
    assert "card counts not written" not in (tmp_path / "log.txt").read_text()
