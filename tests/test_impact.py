"""`oi-cds impact` (issue 14, item 6): two knowledge versions over one NDJSON cohort; per rule,
how many patients' plans gain or lose it, against the plans each version makes directly."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

from services.plan_builder import Planner, load_knowledge
from services.plan_builder.bundle import split_bundle
from services.plan_builder.knowledge import default_profiles_dir
from tests.test_bulk import EXAMPLE, _export

AT = "2026-06-01"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "impact", *args], capture_output=True, text=True, check=False
    )


def _impact(tmp_path: Path, new: Path, *extra: str) -> dict[str, object]:
    old = str(default_profiles_dir())
    run = _run("--from", old, "--to", str(new), "--ndjson-dir", str(tmp_path / "export"), "--at", AT, *extra)
    assert run.returncode == 0, run.stderr
    report: dict[str, object] = json.loads(run.stdout)
    return report


def test_a_changed_condition_shows_its_reach(tmp_path: Path) -> None:
    _export(tmp_path / "export")
    new = tmp_path / "new"
    shutil.copytree(default_profiles_dir(), new, ignore=shutil.ignore_patterns("examples", "__*"))
    path = new / "PlanDefinition-oi-management.json"
    plan = json.loads(path.read_text())
    action = next(a for a in plan["action"] if a["id"] == "rehabilitation")
    # moderate OI no longer enough: only severe
    action["condition"][0]["expression"]["expression"] = "%facts.oi and %facts.severity = 'severe'"
    path.write_text(json.dumps(plan))

    groups = split_bundle(json.loads(EXAMPLE.read_text())).groups
    old_p, new_p = Planner(load_knowledge()), Planner(load_knowledge(new))
    lost = sum(
        "rehabilitation" in old_p.plan(g.patient, g.resources, date.fromisoformat(AT), g.ref).keys
        and "rehabilitation" not in new_p.plan(g.patient, g.resources, date.fromisoformat(AT), g.ref).keys
        for g in groups
    )
    assert lost >= 1, "the example cohort has a moderate OI patient"
    report = _impact(tmp_path, new)
    assert report["patients"] == len(groups)
    assert report["byRule"] == [{"recommendation": "rehabilitation", "gained": 0, "lost": lost}]
    assert report["plansChanged"] == lost
    rows: list[dict[str, list[str]]] = _impact(tmp_path, new, "--ids")["byRule"]  # type: ignore[assignment]
    assert len(rows[0]["lostBy"]) == lost
    assert all(ref.startswith("Patient/") for ref in rows[0]["lostBy"])


def test_the_same_knowledge_changes_nothing(tmp_path: Path) -> None:
    _export(tmp_path / "export")
    report = _impact(tmp_path, default_profiles_dir())
    assert report["byRule"] == []
    assert report["plansChanged"] == 0


def test_a_folder_without_ndjson_is_refused(tmp_path: Path) -> None:
    (tmp_path / "export").mkdir()
    run = _run("--from", ".", "--to", ".", "--ndjson-dir", str(tmp_path / "export"))
    assert run.returncode == 2
    assert "is not a folder of .ndjson files" in run.stderr
