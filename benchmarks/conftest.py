"""Benchmarks: not part of the test suite (`make bench`). Every figure is read as a ratio
against a baseline measured in the same run, because the machines are shared and noisy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VIGNETTES = Path(__file__).parent.parent / "tests" / "data" / "vignettes"


def vignette_patients() -> list[dict[str, Any]]:
    """The patient-view vignettes as Bundles (draft orders removed)."""
    out = []
    for v in json.loads((VIGNETTES / "vignettes.json").read_text()):
        if v["hook"] != "patient-view":
            continue
        bundle = json.loads((VIGNETTES / "bundles" / f"{v['id']}.bundle.json").read_text())
        bundle["entry"] = [e for e in bundle["entry"] if "meta" not in e["resource"]]
        out.append(bundle)
    return out


def many_patients(count: int) -> dict[str, Any]:
    """A collection Bundle of `count` patients cycling through the vignettes, ids made unique."""
    templates = vignette_patients()
    entries = []
    for i in range(count):
        template = templates[i % len(templates)]
        for entry in template["entry"]:
            resource = dict(entry["resource"])
            resource["id"] = f"{resource['id'][:40]}-{i}"
            if "subject" in resource:
                resource["subject"] = {
                    "reference": f"urn:uuid:{template['entry'][0]['resource']['id'][:40]}-{i}"
                }
            entries.append({"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}
