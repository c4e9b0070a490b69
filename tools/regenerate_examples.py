"""Regenerate what is derived: the example CarePlans (fhir_profiles/examples), the example hook
requests (docs/examples) and the README's settings table.

Run after a knowledge change (``make examples``); tests/test_knowledge_artifacts.py fails
while the examples and the engine disagree.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from services.plan_builder import Planner, load_knowledge
from services.plan_builder.batch import plan_bundle
from services.plan_builder.knowledge import default_profiles_dir

EXAMPLE_DATE = date(2026, 6, 1)


REQUESTS = Path(__file__).parent.parent / "docs" / "examples"


def write_requests(folder: Path = REQUESTS) -> None:
    """The hook requests the README's curl examples post (docs/examples/)."""
    from services.cds_hooks.examples import order_select_example, order_sign_example, patient_view_example

    for name, body in (
        ("patient-view.json", patient_view_example()),
        ("order-select.json", order_select_example()),
        ("order-sign.json", order_sign_example()),
    ):
        (folder / name).write_text(json.dumps(body, indent=2) + "\n")
        print(f"wrote {folder / name}")


def write_readme_settings(readme: Path = REQUESTS.parent.parent / "README.md") -> None:
    """The README's settings table, generated from the Settings class."""
    from services.cli import settings_table

    text = readme.read_text()
    start_mark, end_mark = "<!-- settings-table:start -->", "<!-- settings-table:end -->"
    start, end = text.index(start_mark) + len(start_mark), text.index(end_mark)
    readme.write_text(text[:start] + "\n" + settings_table() + "\n" + text[end:])
    print(f"wrote the settings table in {readme}")


def main() -> None:
    write_readme_settings()
    write_requests()
    examples = default_profiles_dir() / "examples"
    bundle = json.loads((examples / "Bundle-example-patients.json").read_text())
    for old in examples.glob("CarePlan-example-*.json"):
        old.unlink()
    for outcome in plan_bundle(bundle, Planner(load_knowledge()), EXAMPLE_DATE):
        if outcome.kind == "careplan" and outcome.patient_ref:
            name = outcome.patient_ref.removeprefix("Patient/")
            path = examples / f"CarePlan-example-{name}.json"
            path.write_text(json.dumps(outcome.resource, indent=2, ensure_ascii=False) + "\n")
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
