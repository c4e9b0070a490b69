"""Feedback storage: every item is committed before the call is answered."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite
from starlette.concurrency import run_in_threadpool

from services.cds_hooks.card_ids import KeyDecoder
from services.cds_hooks.db import feedback
from services.cds_hooks.models import Feedback


def parse_timestamp(text: str) -> datetime:
    """RFC 3339 (fractional seconds allowed); naive times are read as UTC."""
    value = datetime.fromisoformat(text.replace("z", "Z"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class FeedbackStore:
    def __init__(self, engine: Engine, keys: Iterable[str]) -> None:
        self.engine = engine
        self.keys = KeyDecoder(keys)
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        # idempotent on card + outcome + outcomeTimestamp: a repeated item is not an error
        # RETURNING counts what was new on every backend (rowcount of an executemany is not
        # reliable on PostgreSQL)
        self._insert = dialect.insert(feedback).on_conflict_do_nothing().returning(feedback.c.id)

    def _record(self, service_id: str, items: Sequence[Feedback]) -> int:
        now = datetime.now(UTC)
        rows = []
        for item in items:
            reason = item.overrideReason.reason if item.overrideReason else None
            at = parse_timestamp(item.outcomeTimestamp)
            rows.append(
                {
                    "service_id": service_id,
                    "card_uuid": item.card,
                    "recommendation_key": self.keys.key_of(item.card),
                    "outcome": item.outcome,
                    # the instant, not the string: "...Z" and "...+00:00" are one event
                    "outcome_timestamp": at.astimezone(UTC).isoformat(timespec="microseconds"),
                    "outcome_at": at,
                    "accepted_suggestions": json.dumps([s.id for s in item.acceptedSuggestions or ()]),
                    "override_system": reason.system if reason else None,
                    "override_code": reason.code if reason else None,
                    "has_comment": bool(item.overrideReason and item.overrideReason.userComment),
                    "received_at": now,
                }
            )
        with self.engine.begin() as connection:
            return len(connection.execute(self._insert, rows).all())

    async def record(self, service_id: str, items: Sequence[Feedback]) -> int:
        return await run_in_threadpool(self._record, service_id, items)

    def _summary(self, since: datetime | None) -> list[dict[str, Any]]:
        columns = (
            feedback.c.service_id,
            feedback.c.recommendation_key,
            feedback.c.outcome,
            feedback.c.override_code,
        )
        query = select(*columns, func.count().label("count")).group_by(*columns).order_by(*columns[:3])
        if since is not None:
            query = query.where(feedback.c.outcome_at >= since)
        names = ("service", "recommendation", "outcome", "overrideReason", "count")
        with self.engine.connect() as connection:
            return [
                {name: value for name, value in zip(names, row, strict=True) if value is not None}
                for row in connection.execute(query)
            ]

    async def summary(self, since: datetime | None) -> list[dict[str, Any]]:
        return await run_in_threadpool(self._summary, since)
