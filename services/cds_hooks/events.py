"""Cards shown, and what shadow mode would have shown, counted cheaply on the hot path.

A hook call only adds to an in-memory counter (and, in shadow mode, a list of rows); a task
writes them to the database in one transaction every OI_CDS_EVENTS_FLUSH_S seconds, at shutdown,
and before the analytics are read. No patient data: key, service and day; shadow rows carry the
patient id only as an HMAC under the site's secret. A worker killed between flushes loses at
most its last interval of counts (never feedback, which is committed before it is answered).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
from collections import Counter
from collections.abc import Iterable
from datetime import date

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from starlette.concurrency import run_in_threadpool

from services.cds_hooks.db import card_counts, shadow_events

log = logging.getLogger("oi_cds")
CALL = "call"  # the shadow row every hook call gets: calls and patients seen, whatever fired


class EventSink:
    def __init__(self, engine: Engine, secret: bytes | None) -> None:
        self.engine = engine
        self.secret = secret  # None until the database is migrated (then /readyz sets it)
        self._counts: Counter[tuple[date, str, str, str]] = Counter()
        self._shadow: list[dict[str, object]] = []
        self._lock = threading.Lock()  # flushes run in a thread; the hot path only appends
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(card_counts)
        self._upsert = insert.on_conflict_do_update(
            index_elements=["day", "service_id", "recommendation_key", "mode"],
            set_={"count": card_counts.c.count + insert.excluded["count"]},
        )

    def patient_hash(self, patient_id: str) -> str:
        if self.secret is None:
            raise RuntimeError("the shadow-mode secret is not set: the database is not migrated")
        return hmac.new(self.secret, patient_id.encode(), hashlib.sha256).hexdigest()[:32]

    def shown(self, day: date, service: str, keys: Iterable[str], mode: str = "live") -> None:
        for key in keys:
            self._counts[(day, service, key[:64], mode)] += 1

    def would_show(
        self, day: date, service: str, patient_id: str, keys: Iterable[tuple[str, str | None]]
    ) -> None:
        """Shadow mode: the recommendations (key, card indicator) this call would have shown."""
        who = self.patient_hash(patient_id)
        rows = [
            {
                "day": day,
                "service_id": service,
                "recommendation_key": CALL,
                "indicator": None,
                "patient_hash": who,
            }
        ]
        rows += [
            {
                "day": day,
                "service_id": service,
                "recommendation_key": k[:64],
                "indicator": i,
                "patient_hash": who,
            }
            for k, i in keys
        ]
        self._shadow.extend(rows)

    def flush(self) -> int:
        """Write what has been counted (one transaction); returns the rows written."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
            shadow, self._shadow = self._shadow, []
        if not counts and not shadow:
            return 0
        rows = [
            {"day": d, "service_id": s, "recommendation_key": k, "mode": m, "count": n}
            for (d, s, k, m), n in counts.items()
        ]
        try:
            with self.engine.begin() as connection:
                if rows:
                    connection.execute(self._upsert, rows)
                if shadow:
                    connection.execute(shadow_events.insert(), shadow)
        except Exception:
            # the database is away: keep the counts for the next flush rather than lose them
            with self._lock:
                self._counts.update(counts)
                self._shadow[:0] = shadow
            raise
        return len(rows) + len(shadow)

    async def run(self, interval_s: float) -> None:
        """Flush every interval until cancelled (then once more)."""
        try:
            while True:
                await asyncio.sleep(interval_s)
                await self.aflush()
        finally:
            await self.aflush()

    async def aflush(self) -> None:
        try:
            await run_in_threadpool(self.flush)
        except Exception as exc:
            log.warning("card counts not written yet: %s", type(exc).__name__)
