"""What the committee reads back: feedback analytics (cards shown, accepted, overridden, by
week) and the shadow-mode go-live report. Plain SQL over the tables (SQLite and PostgreSQL);
weeks are ISO weeks (Monday), worked out here so both databases agree."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from services.cds_hooks.db import card_counts, feedback, shadow_events
from services.cds_hooks.events import CALL

ORDER_SIGN = "oi-order-sign"
FOLLOWED = ("bisphosphonate-therapy", "order-bisphosphonate-supported")  # advice, then the order


def week_of(day: date | datetime) -> str:
    d = day.date() if isinstance(day, datetime) else day
    return (d - timedelta(days=d.weekday())).isoformat()


def analytics(engine: Engine, since: date | None = None) -> dict[str, Any]:
    """Per service, recommendation key and week: cards shown, accepted, overridden (by reason)."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}

    def row(week: str, service: str, key: str) -> dict[str, Any]:
        return rows.setdefault(
            (week, service, key),
            {
                "week": week,
                "service": service,
                "recommendation": key,
                "shown": 0,
                "accepted": 0,
                "overridden": 0,
                "overrideReasons": {},
            },
        )

    shown = select(
        card_counts.c.day, card_counts.c.service_id, card_counts.c.recommendation_key, card_counts.c.count
    ).where(card_counts.c.mode == "live")
    cols = (
        feedback.c.outcome_at,
        feedback.c.service_id,
        feedback.c.recommendation_key,
        feedback.c.outcome,
        feedback.c.override_code,
    )
    outcomes = select(*cols)
    if since is not None:
        shown = shown.where(card_counts.c.day >= since)
        outcomes = outcomes.where(feedback.c.outcome_at >= datetime(since.year, since.month, since.day))
    with engine.connect() as connection:
        for day, service, key, count in connection.execute(shown):
            row(week_of(day), service, key)["shown"] += count
        for at, service, key, outcome, reason in connection.execute(outcomes):
            r = row(week_of(at), service, key or "unknown")
            if outcome == "accepted":
                r["accepted"] += 1
            elif outcome == "overridden":
                r["overridden"] += 1
                reasons = r["overrideReasons"]
                reasons[reason or "none given"] = reasons.get(reason or "none given", 0) + 1
    ordered = [rows[k] for k in sorted(rows)]
    totals = {m: sum(r[m] for r in ordered) for m in ("shown", "accepted", "overridden")}
    return {"weeks": sorted({r["week"] for r in ordered}), "rows": ordered, "totals": totals}


def shadow_report(engine: Engine) -> dict[str, Any]:
    """What shadow mode would have shown: per rule and week, per patient, and how the orders
    signed later agreed with the advice."""
    query = select(
        shadow_events.c.day,
        shadow_events.c.service_id,
        shadow_events.c.recommendation_key,
        shadow_events.c.indicator,
        shadow_events.c.patient_hash,
        func.count().label("n"),
    ).group_by(
        *(
            shadow_events.c[c]
            for c in ("day", "service_id", "recommendation_key", "indicator", "patient_hash")
        )
    )
    calls: dict[str, int] = defaultdict(int)
    patients: set[str] = set()
    fired: dict[tuple[str, str], dict[str, Any]] = {}
    per_patient: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    advice: dict[str, date] = {}  # patient -> first day the advice would have been shown
    order_days: dict[str, list[date]] = defaultdict(list)
    sign_calls: dict[tuple[date, str], bool] = {}  # (day, patient) -> any warning at order-sign
    with engine.connect() as connection:
        events = list(connection.execute(query.order_by(shadow_events.c.day)))
    for day, service, key, indicator, who, n in events:
        if key == CALL:
            calls[service] += n
            patients.add(who)
            if service == ORDER_SIGN:
                sign_calls.setdefault((day, who), False)
            continue
        entry = fired.setdefault(
            (key, week_of(day)), {"recommendation": key, "week": week_of(day), "fired": 0, "patients": set()}
        )
        entry["fired"] += n
        entry["patients"].add(who)
        per_patient[key][who] += n
        if service == ORDER_SIGN and indicator == "warning":
            sign_calls[(day, who)] = True
        if key == FOLLOWED[0]:
            advice.setdefault(who, day)
        if key == FOLLOWED[1] and service == ORDER_SIGN:
            order_days[who].append(day)
    signed = len(sign_calls)
    against = sum(sign_calls.values())
    advised = set(advice)
    followed = {who for who in advised if any(d >= advice[who] for d in order_days.get(who, ()))}
    return {
        "calls": dict(calls),
        "patients": len(patients),
        "weeks": sorted({e["week"] for e in fired.values()}),
        "byRuleAndWeek": [
            {**e, "patients": len(e["patients"])}
            for e in sorted(fired.values(), key=lambda e: (e["recommendation"], e["week"]))
        ],
        "perPatient": [
            {
                "recommendation": key,
                "patients": len(counts),
                "meanPerPatient": round(sum(counts.values()) / len(counts), 2),
                "maxPerPatient": max(counts.values()),
            }
            for key, counts in sorted(per_patient.items())
        ],
        "orderSign": {
            "patientDays": signed,
            "withAWarning": against,
            "agreed": signed - against,
            "agreementRate": round((signed - against) / signed, 3) if signed else None,
            "bisphosphonateAdvice": len(advised),
            "bisphosphonateOrderedAfterAdvice": len(followed),
        },
    }
