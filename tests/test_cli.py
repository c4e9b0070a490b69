"""`oi-cds plan` as a user runs it: a real subprocess on real files."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.bundle import Bundle

from services.plan_builder.errors import Msg
from services.plan_builder.knowledge import default_profiles_dir
from tests.fhir_builders import bundle, condition, patient

EXAMPLE = default_profiles_dir() / "examples" / "Bundle-example-patients.json"


def oi_cds(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "services.cli", *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, env=env)


def test_readme_example_prints_valid_careplans() -> None:
    run = oi_cds("plan", "--at", "2026-06-01", str(EXAMPLE))
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    Bundle.model_validate(out)  # the whole output validates, CarePlans included
    assert out["type"] == "collection"
    assert [e["resource"]["subject"]["reference"] for e in out["entry"]] == [
        "Patient/oi-type-iii-child",
        "Patient/oi-no-birthdate",
    ]
    assert run.stderr.strip() == "patients read: 3, planned: 2, without OI: 1, with errors: 0"


def test_strict_and_include_non_oi() -> None:
    run = oi_cds("plan", "--at", "2026-06-01", "--strict", "--include-non-oi", str(EXAMPLE))
    assert run.returncode == 0, run.stderr
    kinds = [e["resource"]["resourceType"] for e in json.loads(run.stdout)["entry"]]
    assert kinds == ["CarePlan", "CarePlan", "OperationOutcome"]


def test_reads_standard_input() -> None:
    doc = bundle(patient("a", birth="2016-01-01"), condition("oi-type-1", pid="a"))
    run = oi_cds("plan", "--at", "2026-06-01", "-", stdin=json.dumps(doc))
    assert run.returncode == 0
    assert json.loads(run.stdout)["entry"][0]["resource"]["resourceType"] == "CarePlan"


@pytest.mark.parametrize(
    ("content", "words", "msg"),
    [
        ("{not json", "is not JSON", None),
        ('{"resourceType": "Patient", "id": "x"}', "expected a FHIR Bundle", Msg.NOT_A_BUNDLE),
        ('{"resourceType": "Bundle", "type": "message"}', "Bundle.type", Msg.BUNDLE_TYPE),
        ("", "is not JSON", None),
    ],
)
def test_unusable_file_exits_2_with_an_operation_outcome(
    tmp_path: Path, content: str, words: str, msg: Msg | None
) -> None:
    path = tmp_path / "in.json"
    path.write_text(content)
    run = oi_cds("plan", "--at", "2026-06-01", str(path))
    assert run.returncode == 2
    assert run.stdout == ""
    outcome: dict[str, Any] = json.loads(run.stderr)
    assert outcome["resourceType"] == "OperationOutcome"
    (issue,) = outcome["issue"]
    assert words in issue["diagnostics"]
    if msg is not None:  # the plan builder's input errors carry its stable message code
        assert [c["code"] for c in issue["details"]["coding"]] == [msg.value]


def test_missing_file_and_bad_date(tmp_path: Path) -> None:
    run = oi_cds("plan", str(tmp_path / "nope.json"))
    assert run.returncode == 2
    assert "cannot read" in json.loads(run.stderr)["issue"][0]["diagnostics"]
    run = oi_cds("plan", "--at", "June 1st", str(EXAMPLE))
    assert run.returncode == 2
    assert "not a date" in run.stderr


def test_one_bad_patient_does_not_fail_the_file(tmp_path: Path) -> None:
    doc = bundle(
        patient("a", birth="2016-01-01"),
        condition("oi-type-3", pid="a"),
        patient("b"),
        {**condition("oi-type-1", pid="b"), "severity": "bad"},
        {**condition("oi-type-1"), "subject": {"reference": "Patient/ghost"}},
    )
    path = tmp_path / "in.json"
    path.write_text(json.dumps(doc))
    run = oi_cds("plan", "--at", "2026-06-01", str(path))
    assert run.returncode == 0
    resources = [e["resource"] for e in json.loads(run.stdout)["entry"]]
    assert [r["resourceType"] for r in resources] == ["CarePlan", "OperationOutcome", "OperationOutcome"]
    assert "Patient/b" in resources[1]["issue"][0]["diagnostics"]
    assert "Patient/ghost" in resources[2]["issue"][0]["diagnostics"]
    assert (
        run.stderr.strip()
        == "patients read: 2, planned: 1, without OI: 0, with errors: 1, resources without a patient: 1"
    )


def test_default_date_uses_the_configured_time_zone() -> None:
    zone = ZoneInfo("Pacific/Kiritimati")  # UTC+14: often a different day from UTC
    before = datetime.now(zone).date().isoformat()
    run = oi_cds("plan", str(EXAMPLE), env={"OI_CDS_TIMEZONE": "Pacific/Kiritimati"})
    after = datetime.now(zone).date().isoformat()
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["entry"][0]["resource"]["created"] in {before, after}
    bad = oi_cds("plan", str(EXAMPLE), env={"OI_CDS_TIMEZONE": "Mars/Olympus"})
    assert bad.returncode == 2
    assert "time zone" in bad.stderr


def test_serve_refuses_several_workers_without_a_shared_replay_cache() -> None:
    import os

    env = {
        **os.environ,
        "OI_CDS_AUTH_MODE": "required",
        "OI_CDS_DATABASE_URL": "sqlite://",
        "OI_CDS_PUBLIC_BASE_URL": "http://127.0.0.1:1",
    }
    run = oi_cds("serve", "--workers", "2", "--port", "1", env=env)
    assert run.returncode == 2
    assert "replay cache is not shared" in json.loads(run.stderr)["issue"][0]["diagnostics"]


@pytest.mark.parametrize("workers", ["0", "-1", "two"])
def test_serve_refuses_a_number_of_workers_that_is_not_one_or_more(workers: str) -> None:
    run = oi_cds("serve", "--workers", workers, "--port", "1")
    assert run.returncode == 2
    assert "not a number of workers (1 or more)" in run.stderr


@pytest.mark.parametrize("seconds", ["0", "-3", "soon", "nan", "inf"])
def test_serve_refuses_a_worker_timeout_that_is_not_a_positive_number(seconds: str) -> None:
    run = oi_cds("serve", "--workers", "2", "--worker-timeout", seconds, "--port", "1")
    assert run.returncode == 2
    assert "not a number of seconds (more than 0)" in run.stderr


def test_serve_worker_timeout_defaults_to_the_supervisors() -> None:
    from services.cds_hooks.workers import WORKER_TIMEOUT_S
    from services.cli import _parser

    assert _parser().parse_args(["serve"]).worker_timeout == WORKER_TIMEOUT_S


def test_serve_refuses_auth_without_a_public_base_url() -> None:
    """Issue 16: the JWT audience must never come from the Host header a caller chooses."""
    import os

    env = {**os.environ, "OI_CDS_AUTH_MODE": "required", "OI_CDS_DATABASE_URL": "sqlite://"}
    env.pop("OI_CDS_PUBLIC_BASE_URL", None)
    env.pop("OI_CDS_DEMO", None)
    run = oi_cds("serve", "--port", "1", env=env)
    assert run.returncode == 2
    assert "OI_CDS_PUBLIC_BASE_URL is not set" in json.loads(run.stderr)["issue"][0]["diagnostics"]
