"""The population gap report of a bulk run: OI patients per recommendation, and the patients
whose record lacks what the rules need (facts not settled, recommendations withheld for it).

Written next to the CarePlans: `summary.json` (the counts), `recommendations.csv`, `gaps.csv`
(one row per OI patient with a gap) and `gaps.html` (the same with two charts; no script).
"""

from __future__ import annotations

import csv
import json
from datetime import date
from html import escape
from pathlib import Path

from services.cds_hooks.charts import hbars
from services.cds_hooks.pages import page, table
from services.plan_builder.batch import Summary

FILES = ("summary.json", "recommendations.csv", "gaps.csv", "gaps.html")


def write_report(summary: Summary, out: Path, at: date, engine: str) -> list[Path]:
    counts = {"evaluatedOn": at.isoformat(), "engine": engine, **summary.counts()}
    (out / "summary.json").write_text(json.dumps(counts, indent=2) + "\n")
    recommendations = sorted(summary.recommendations.items(), key=lambda kv: (-kv[1], kv[0]))
    missing = sorted(summary.missing.items(), key=lambda kv: (-kv[1], kv[0]))
    gaps = sorted(summary.gaps)
    with (out / "recommendations.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["recommendation", "patients"])
        writer.writerows(recommendations)
    with (out / "gaps.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["patient", "missing", "withheld"])
        writer.writerows([ref, ";".join(facts), ";".join(withheld)] for ref, facts, withheld in gaps)
    body = (
        f"<p class='muted'>Evaluated on {escape(at.isoformat())} ({escape(engine)} engine): "
        f"{summary.read} patients read, {summary.planned} with OI and a CarePlan, "
        f"{summary.without_oi} without OI, {summary.errors} with errors, "
        f"{summary.orphans} resources without a patient.</p>"
        "<h2>OI patients per recommendation</h2>"
        + hbars("OI patients per recommendation", recommendations)
        + table(["recommendation", "patients"], [list(r) for r in recommendations], "recommendations")
        + "<h2>What the rules need and the record lacks</h2>"
        + f"<p class='muted'>{len(gaps)} of {summary.planned} OI patients have a gap.</p>"
        + hbars("OI patients per fact not recorded", missing)
        + table(["fact", "patients"], [list(r) for r in missing], "missing")
        + table(
            ["patient", "missing", "withheld until recorded"],
            [[ref, ", ".join(facts), ", ".join(withheld)] for ref, facts, withheld in gaps],
            "gaps",
        )
    )
    (out / "gaps.html").write_text(page("OI population gap report", body))
    return [out / name for name in FILES]
