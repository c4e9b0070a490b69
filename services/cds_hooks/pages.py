"""The admin pages as HTML: the analytics and the shadow report, each a chart and its numbers."""

from __future__ import annotations

from collections import defaultdict
from html import escape
from typing import Any

from services.cds_hooks.charts import bars

STYLE = """body { font-family: system-ui, Helvetica, sans-serif; margin: 24px; color: #1d2330; }
table { border-collapse: collapse; margin: 8px 0 18px; font-size: 13px; }
th, td { border: 1px solid #cbd5e0; padding: 3px 8px; text-align: left; } th { background: #edf2f7; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } .muted { color: #555; font-size: 13px; }"""


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def table(headers: list[str], rows: list[list[Any]], cls: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td class='{'n' if isinstance(v, int) else ''}'>{escape(str(v))}</td>" for v in row)
        + "</tr>"
        for row in rows
    )
    return f"<table class='{cls}'><tr>{head}</tr>{body}</table>"


def analytics(data: dict[str, Any]) -> str:
    weeks = data["weeks"]
    by_week: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in data["rows"]:
        for metric in ("shown", "accepted", "overridden"):
            by_week[metric][r["week"]] += r[metric]
    chart = bars(
        "Cards shown, accepted and overridden per week",
        weeks,
        {m: [by_week[m][w] for w in weeks] for m in ("shown", "accepted", "overridden")},
    )
    per_key: dict[tuple[str, str], dict[str, Any]] = {}
    for r in data["rows"]:
        k = per_key.setdefault(
            (r["service"], r["recommendation"]),
            {"shown": 0, "accepted": 0, "overridden": 0, "reasons": defaultdict(int)},
        )
        for metric in ("shown", "accepted", "overridden"):
            k[metric] += r[metric]
        for reason, n in r["overrideReasons"].items():
            k["reasons"][reason] += n
    summary = table(
        ["service", "recommendation", "shown", "accepted", "overridden", "override reasons"],
        [
            [
                s,
                key,
                v["shown"],
                v["accepted"],
                v["overridden"],
                "; ".join(f"{a}: {b}" for a, b in sorted(v["reasons"].items())),
            ]
            for (s, key), v in sorted(per_key.items())
        ],
        "by-recommendation",
    )
    weekly = table(
        ["week", "service", "recommendation", "shown", "accepted", "overridden"],
        [
            [r["week"], r["service"], r["recommendation"], r["shown"], r["accepted"], r["overridden"]]
            for r in data["rows"]
        ],
        "by-week",
    )
    t = data["totals"]
    return page(
        "OI-CDS feedback analytics",
        f"<p class='muted'>Totals: <span id='total-shown'>{t['shown']}</span> cards shown, "
        f"<span id='total-accepted'>{t['accepted']}</span> accepted, <span id='total-overridden'>{t['overridden']}</span> "
        "overridden. Shown is counted per card returned (no patient data); accepted and overridden come from the "
        "EHR's feedback. <a href='/admin/analytics.csv'>CSV</a> · <a href='/admin/analytics.json'>JSON</a> · "
        "<a href='/knowledge'>the rule book</a></p>"
        f"{chart}<h2>By recommendation</h2>{summary}<h2>By week</h2>{weekly}",
    )


def shadow(report: dict[str, Any]) -> str:
    weeks = report["weeks"]
    keys = sorted({e["recommendation"] for e in report["byRuleAndWeek"]})
    fired = {(e["recommendation"], e["week"]): e["fired"] for e in report["byRuleAndWeek"]}
    top = sorted(keys, key=lambda k: -sum(fired.get((k, w), 0) for w in weeks))[:6]
    chart = bars(
        "Would have fired per week (the six most frequent rules)",
        weeks,
        {k: [fired.get((k, w), 0) for w in weeks] for k in top},
    )
    o = report["orderSign"]
    rate = "n/a" if o["agreementRate"] is None else f"{o['agreementRate']:.0%}"
    return page(
        "OI-CDS shadow mode: go-live report",
        f"<p class='muted'>Mode now: <b>{escape(report['mode'])}</b>. Calls seen: "
        f"{escape(', '.join(f'{s} {n}' for s, n in sorted(report['calls'].items())) or 'none')}; "
        f"{report['patients']} distinct patients (as hashes: no patient data is kept). "
        "<a href='/admin/shadow.json'>JSON</a></p>"
        f"{chart}<h2>Would have fired, per rule and week</h2>"
        + table(
            ["recommendation", "week", "times", "patients"],
            [[e["recommendation"], e["week"], e["fired"], e["patients"]] for e in report["byRuleAndWeek"]],
            "by-rule",
        )
        + "<h2>How often per patient</h2>"
        + table(
            ["recommendation", "patients", "mean per patient", "most for one patient"],
            [
                [p["recommendation"], p["patients"], str(p["meanPerPatient"]), p["maxPerPatient"]]
                for p in report["perPatient"]
            ],
            "per-patient",
        )
        + "<h2>Orders signed: did they agree with the advice?</h2>"
        + table(
            [
                "order-sign (patient, day)",
                "with a warning the service would have shown",
                "agreed",
                "agreement",
            ],
            [[o["patientDays"], o["withAWarning"], o["agreed"], rate]],
            "order-sign",
        )
        + f"<p class='muted'>Of {o['bisphosphonateAdvice']} patients who would have been advised a bisphosphonate, "
        f"{o['bisphosphonateOrderedAfterAdvice']} had one signed on or after that day.</p>",
    )
