"""Demo data: synthetic patients (fhir_profiles/examples/demo/), with their dates moved so
that each Bundle's `timestamp` (the day the data was written for) becomes today: the demo never
goes stale. Only loaded in demo mode."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

from services.plan_builder.knowledge import default_profiles_dir
from services.plan_builder.types import JSON

_FULL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?=\Z|T)")
SEARCHABLE = (
    "Condition",
    "Observation",
    "MedicationRequest",
    "MedicationStatement",
    "ServiceRequest",
    "Procedure",
    "CarePlan",
)


def shift_dates(node: Any, days: int) -> Any:
    """Every full date and dateTime moved by `days`; partial dates stay as written."""
    if isinstance(node, dict):
        return {k: shift_dates(v, days) for k, v in node.items()}
    if isinstance(node, list):
        return [shift_dates(v, days) for v in node]
    if isinstance(node, str) and (match := _FULL_DATE.match(node)):
        moved = date.fromordinal(date.fromisoformat(match.group(0)).toordinal() + days)
        return moved.isoformat() + node[10:]
    return node


class DemoStore:
    def __init__(self, today: date, folder: Path | None = None) -> None:
        folder = folder or default_profiles_dir() / "examples" / "demo"
        self.patients: dict[str, JSON] = {}
        self.summaries: dict[str, str] = {}
        self.resources: dict[str, list[JSON]] = {t: [] for t in SEARCHABLE}
        for path in sorted(folder.glob("*.json")):
            bundle = json.loads(path.read_text())
            written = date.fromisoformat(bundle["timestamp"][:10])
            bundle = shift_dates(bundle, today.toordinal() - written.toordinal())
            for entry in bundle["entry"]:
                resource = entry["resource"]
                if resource["resourceType"] == "Patient":
                    self.patients[resource["id"]] = resource
                    self.summaries[resource["id"]] = bundle["meta"]["tag"][0]["display"]
                elif resource["resourceType"] in self.resources:
                    self.resources[resource["resourceType"]].append(resource)

    def search(self, resource_type: str, patient_id: str) -> list[JSON]:
        ref = f"Patient/{patient_id}"
        return [r for r in self.resources[resource_type] if (r.get("subject") or {}).get("reference") == ref]
