"""Feedback storage: acknowledged feedback is committed before the answer; the card -> key
map is written in batches off the request path (losing it on a crash is acceptable)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite
from starlette.concurrency import run_in_threadpool

from services.cds_hooks.db import feedback, issued_card
from services.cds_hooks.models import Coding, Feedback

log = logging.getLogger("oi_cds")
_BATCH = 500
_WINDOW_S = 1.0


def _insert(engine: Engine, table: Any) -> Any:
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def parse_timestamp(text: str) -> datetime:
    """RFC 3339 (fractional seconds allowed); naive times are read as UTC."""
    value = datetime.fromisoformat(text.replace("z", "Z"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class FeedbackStore:
    def __init__(self, engine: Engine, queue_size: int = 10_000) -> None:
        self.engine = engine
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=queue_size)
        self.dropped = 0
        self._pending: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # feedback: synchronous commit, then 2xx
    def _record(self, service_id: str, items: Sequence[Feedback]) -> int:
        now = datetime.now(UTC)
        rows = []
        for item in items:
            reason = item.overrideReason.reason if item.overrideReason else None
            reason_dict = reason.wire() if isinstance(reason, Coding) else (reason or {})
            rows.append(
                {
                    "service_id": service_id,
                    "card_uuid": item.card,
                    "outcome": item.outcome,
                    "outcome_timestamp": item.outcomeTimestamp,
                    "outcome_at": parse_timestamp(item.outcomeTimestamp),
                    "accepted_suggestions": json.dumps([s.id for s in item.acceptedSuggestions or ()])
                    or None,
                    "override_system": reason_dict.get("system"),
                    "override_code": reason_dict.get("code"),
                    "has_comment": bool(item.overrideReason and item.overrideReason.userComment),
                    "received_at": now,
                }
            )
        with self.engine.begin() as connection:
            result = connection.execute(_insert(self.engine, feedback), rows)
        return int(result.rowcount or 0)

    async def record(self, service_id: str, items: Sequence[Feedback]) -> int:
        return await run_in_threadpool(self._record, service_id, items)

    # issued cards: queued, written in batches
    def remember(self, service_id: str, issued: dict[str, str]) -> None:
        now = datetime.now(UTC)
        for card_uuid, key in issued.items():
            try:
                self.queue.put_nowait(
                    {
                        "card_uuid": card_uuid,
                        "service_id": service_id,
                        "recommendation_key": key,
                        "issued_at": now,
                    }
                )
            except asyncio.QueueFull:
                self.dropped += 1

    def _write_issued(self, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as connection:
            connection.execute(_insert(self.engine, issued_card), rows)

    async def _writer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._pending.append(await self.queue.get())
            # gather for up to a second: one commit per batch keeps the database off the hot path
            deadline = loop.time() + _WINDOW_S
            while len(self._pending) < _BATCH and (left := deadline - loop.time()) > 0:
                try:
                    self._pending.append(await asyncio.wait_for(self.queue.get(), left))
                except TimeoutError:
                    break
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self._writer())

    async def flush(self) -> None:
        """Write every issued card gathered so far (rows are idempotent)."""
        async with self._lock:
            while not self.queue.empty():
                self._pending.append(self.queue.get_nowait())
            rows, self._pending = self._pending, []
            if not rows:
                return
            try:
                await run_in_threadpool(self._write_issued, rows)
            except Exception as exc:  # a lost mapping is acceptable; a dead writer is not
                log.warning("could not store %d issued-card rows: %s", len(rows), type(exc).__name__)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    # the CDS committee's view
    def _summary(self, since: datetime | None) -> list[dict[str, Any]]:
        query = (
            select(
                feedback.c.service_id,
                issued_card.c.recommendation_key,
                feedback.c.outcome,
                feedback.c.override_code,
                func.count().label("count"),
            )
            .select_from(feedback.outerjoin(issued_card, feedback.c.card_uuid == issued_card.c.card_uuid))
            .group_by(
                feedback.c.service_id,
                issued_card.c.recommendation_key,
                feedback.c.outcome,
                feedback.c.override_code,
            )
            .order_by(feedback.c.service_id, issued_card.c.recommendation_key, feedback.c.outcome)
        )
        if since is not None:
            query = query.where(feedback.c.outcome_at >= since)
        with self.engine.connect() as connection:
            return [
                {
                    k: v
                    for k, v in {
                        "service": row.service_id,
                        "recommendation": row.recommendation_key,
                        "outcome": row.outcome,
                        "overrideReason": row.override_code,
                        "count": row.count,
                    }.items()
                    if v is not None
                }
                for row in connection.execute(query)
            ]

    async def summary(self, since: datetime | None) -> list[dict[str, Any]]:
        await self.flush()
        return await run_in_threadpool(self._summary, since)
