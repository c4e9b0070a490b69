"""`oi-cds plan --ndjson-dir`: a Bulk Data export folder, joined through an on-disk index."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fhir.resources.R4B.careplan import CarePlan

from services.plan_builder.knowledge import default_profiles_dir

EXAMPLE = default_profiles_dir() / "examples" / "Bundle-example-patients.json"


def _export(folder: Path, extra: list[dict] | None = None) -> None:  # type: ignore[type-arg]
    folder.mkdir()
    by_type: dict[str, list[str]] = {}
    resources = [e["resource"] for e in json.loads(EXAMPLE.read_text())["entry"]] + (extra or [])
    for resource in resources:  # grouped by type, as an export is: patients' resources interleaved
        by_type.setdefault(resource["resourceType"], []).append(json.dumps(resource))
    for rtype, lines in by_type.items():
        (folder / f"{rtype}.ndjson").write_text("\n".join(reversed(lines)) + "\n")


def test_bulk_folder(tmp_path: Path) -> None:
    ghost = {
        "resourceType": "Condition",
        "id": "ghost",
        "subject": {"reference": "Patient/nobody"},
        "code": {"text": "x"},
    }
    _export(tmp_path / "export", [ghost])
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "plan",
            "--at",
            "2026-06-01",
            "--ndjson-dir",
            str(tmp_path / "export"),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        "patients read: 3, planned: 2, without OI: 1, with errors: 0, resources without a patient: 1"
    )
    assert "patient" in run.stderr  # the progress bar
    careplans = [json.loads(line) for line in (tmp_path / "out" / "CarePlan.ndjson").read_text().splitlines()]
    expected = json.loads(
        (default_profiles_dir() / "examples" / "CarePlan-example-oi-type-iii-child.json").read_text()
    )
    mine = next(c for c in careplans if c["subject"] == expected["subject"])
    # the same plan as from the Bundle, although the export is grouped by type, in another order
    assert mine["id"] == expected["id"]

    def keys(plan: dict) -> list[str]:  # type: ignore[type-arg]
        return [a["detail"]["code"]["coding"][0]["code"] for a in plan["activity"]]

    assert keys(mine) == keys(expected)
    for careplan in careplans:
        CarePlan.model_validate(careplan)
    outcomes = (tmp_path / "out" / "OperationOutcome.ndjson").read_text()
    assert "Patient/nobody" in outcomes
    assert "no osteogenesis imperfecta" in outcomes


def test_bulk_folder_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "plan",
            "--ndjson-dir",
            str(empty),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert "not a folder of .ndjson files" in run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "services.cli", "plan", "--ndjson-dir", str(empty)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert "--out" in run.stderr
