"""The SQLite schema as uvicorn's workers meet it: each runs the lifespan, so each migrates."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import sqlite3
from pathlib import Path

from services.cds_hooks.db import migrate

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
