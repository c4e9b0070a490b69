"""`oi-cds plan --ndjson-dir`: a FHIR Bulk Data export folder (one NDJSON file per type) in,
CarePlan.ndjson and OperationOutcome.ndjson out.

Bulk exports group resources by type, not by patient, so they are joined through an on-disk
SQLite index (a temporary file): memory stays bounded by one patient whatever the export size.
"""

from __future__ import annotations

import json
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any

import orjson

from services.plan_builder.batch import Outcome, Summary, orphan_outcome, plan_group
from services.plan_builder.bundle import PatientGroup, normalize_patient_ref
from services.plan_builder.errors import Msg, PlanInputError
from services.plan_builder.planner import Planner
from services.plan_builder.structural import READ_TYPES, validate_resource
from services.plan_builder.types import JSON

_BATCH = 5_000
# a line's first "resourceType": the top-level one unless a contained resource comes first
RESOURCE_TYPE = re.compile(rb'"resourceType"\s*:\s*"([A-Za-z]+)"')


@dataclass
class BulkResult:
    summary: Summary
    files: dict[str, Path]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                yield number, line


def loads(line: str | bytes) -> Any:
    """orjson's speed with the standard module's answer: what orjson refuses (NaN, integers past
    64 bits, lone surrogates) is parsed by `json` or refused by it as before."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)


def ordered_files(folder: Path) -> list[Path]:
    """The export's NDJSON files, Patient files first (a Patient's first line wins)."""
    files = sorted(folder.glob("*.ndjson"))
    patient_files = [f for f in files if f.name.startswith("Patient")]
    return patient_files + [f for f in files if f not in patient_files]


def read_line(line: str | bytes, where: str) -> tuple[str, str, JSON] | PlanInputError | None:
    """One export line: ("Patient", its reference, it), (its type, its patient's reference, it)
    for a type the planner reads, None for another type, or the problem that makes it unusable."""
    try:
        resource = loads(line)
    except (ValueError, RecursionError):
        return PlanInputError(f"{where} is not JSON", msg=Msg.NOT_JSON, path=where, code="structure")
    if not isinstance(resource, dict):
        return PlanInputError(
            f"{where} is not a JSON object", msg=Msg.NOT_AN_OBJECT, path=where, code="structure"
        )
    rtype = resource.get("resourceType")
    if rtype == "Patient":
        rid = resource.get("id")
        if not isinstance(rid, str):
            return PlanInputError(f"{where}: Patient has no id", msg=Msg.PATIENT_WITHOUT_ID, path=where)
        return "Patient", f"Patient/{rid}", resource
    if rtype not in READ_TYPES:
        return None
    subject = resource.get("subject") or resource.get("patient")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    return str(rtype), normalize_patient_ref(reference) if isinstance(reference, str) else "", resource


def orphan_problem(ref: str, where: str) -> PlanInputError:
    target = ref or "no patient"
    return PlanInputError(
        f"{where} refers to {target}, which is not a Patient in the export",
        msg=Msg.NOT_THE_PATIENTS,
        path=where,
        code="not-found",
    )


def _index(folder: Path, db: sqlite3.Connection) -> list[PlanInputError]:
    """Patients (in file order) and every other readable resource keyed by its patient."""
    problems: list[PlanInputError] = []
    db.execute("CREATE TABLE patient (ref TEXT PRIMARY KEY, seq INTEGER, body TEXT)")
    db.execute("CREATE TABLE resource (ref TEXT, body TEXT, source TEXT)")
    seq = 0
    for path in ordered_files(folder):
        rows: list[tuple[str, ...]] = []
        for number, line in _lines(path):
            where = f"{path.name} line {number}"
            read = read_line(line, where)
            if isinstance(read, PlanInputError):
                problems.append(read)
            elif read is None:
                continue
            elif read[0] == "Patient":
                seq += 1
                db.execute("INSERT OR IGNORE INTO patient VALUES (?, ?, ?)", (read[1], seq, line))
            else:
                rows.append((read[1], line, where))
                if len(rows) >= _BATCH:
                    db.executemany("INSERT INTO resource VALUES (?, ?, ?)", rows)
                    rows.clear()
        db.executemany("INSERT INTO resource VALUES (?, ?, ?)", rows)
    db.execute("CREATE INDEX resource_ref ON resource (ref)")
    for ref, where in db.execute(
        "SELECT resource.ref, resource.source FROM resource LEFT JOIN patient ON patient.ref = resource.ref "
        "WHERE patient.ref IS NULL"
    ):
        problems.append(orphan_problem(ref, where))
    db.commit()
    return problems


def _groups(db: sqlite3.Connection) -> Iterator[PatientGroup]:
    reader = db.cursor()
    for ref, seq, body in db.execute("SELECT ref, seq, body FROM patient ORDER BY seq"):
        group = PatientGroup(seq, loads(body), ref)
        try:
            validate_resource(group.patient, f"{ref}")
        except PlanInputError as exc:
            group.problems.append(exc)
        for line, where in reader.execute("SELECT body, source FROM resource WHERE ref = ?", (ref,)):
            try:
                group.resources.append(validate_resource(loads(line), where))
            except PlanInputError as exc:
                group.problems.append(exc)
        yield group


def plan_folder(
    folder: Path, out: Path, planner: Planner, at: date, progress: IO[str] | None = None
) -> BulkResult:
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    files = {"CarePlan": out / "CarePlan.ndjson", "OperationOutcome": out / "OperationOutcome.ndjson"}
    summary = Summary()
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "index.sqlite3")
        try:
            orphans = _index(folder, db)
            total = db.execute("SELECT COUNT(*) FROM patient").fetchone()[0]
            with files["CarePlan"].open("w") as careplans, files["OperationOutcome"].open("w") as outcomes:
                bar = tqdm(total=total, unit="patient", file=progress, disable=progress is None)
                for group in _groups(db):
                    outcome: Outcome = plan_group(group, planner, at)
                    summary.add(outcome)
                    target = careplans if outcome.kind == "careplan" else outcomes
                    target.write(json.dumps(outcome.resource, separators=(",", ":")) + "\n")
                    bar.update(1)
                bar.close()
                for problem in orphans:
                    orphan = orphan_outcome(problem)
                    summary.add(orphan)
                    outcomes.write(json.dumps(orphan.resource, separators=(",", ":")) + "\n")
        finally:
            db.close()
    return BulkResult(summary, files)


def impact_folder(
    folder: Path, before: Planner, after: Planner, at: date, with_ids: bool = False
) -> dict[str, object]:
    """Two knowledge versions over one cohort: per rule, the patients whose plan gains or loses
    it (counts; the patient references only when asked). Unreadable patients are counted apart."""
    gained: dict[str, list[str]] = {}
    lost: dict[str, list[str]] = {}
    patients = oi = changed = unreadable = 0
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "index.sqlite3")
        try:
            _index(folder, db)
            for group in _groups(db):
                patients += 1
                if group.problems:
                    unreadable += 1
                    continue
                old = set(
                    before.plan(
                        group.patient, group.resources, at, patient_ref=group.ref, careplan=False
                    ).keys
                )
                new = set(
                    after.plan(group.patient, group.resources, at, patient_ref=group.ref, careplan=False).keys
                )
                oi += bool(old or new)
                changed += old != new
                for key in new - old:
                    gained.setdefault(key, []).append(group.ref)
                for key in old - new:
                    lost.setdefault(key, []).append(group.ref)
        finally:
            db.close()
    rules = []
    for key in sorted(gained.keys() | lost.keys()):
        row: dict[str, object] = {
            "recommendation": key,
            "gained": len(gained.get(key, [])),
            "lost": len(lost.get(key, [])),
        }
        if with_ids:
            row |= {"gainedBy": gained.get(key, []), "lostBy": lost.get(key, [])}
        rules.append(row)
    return {
        "patients": patients,
        "patientsWithAPlan": oi,
        "plansChanged": changed,
        "unreadable": unreadable,
        "byRule": rules,
    }
