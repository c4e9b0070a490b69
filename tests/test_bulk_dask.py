"""`oi-cds plan --ndjson-dir --engine dask`: the same answer as the SQLite index, line for line.

The export mixes the shared vignettes, generated patients (with and without OI) and every kind
of broken line the index reports, and is cut into 64 KB byte ranges so that lines, patients and
files straddle partitions. A real scheduler and worker (separate processes) run it too.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from benchmarks import synthetic_export
from services.bulk import plan_folder
from services.bulk_dask import KnowledgeArgs, plan_folder_dask
from services.plan_builder import Planner, load_knowledge
from services.plan_builder.settings import PlanSettings
from tests.conftest import append_ndjson, vignette_export_resources, write_export
from tests.servers import free_port

AT = date(2026, 6, 1)
KARGS = KnowledgeArgs(None, None, PlanSettings().model_dump_json())


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    synthetic_export.write_export(folder, 400, oi_rate=0.05, seed=3)
    resources = vignette_export_resources()
    write_export(folder, resources)
    oi_condition = next(
        json.dumps(r)
        for r in resources
        if r["resourceType"] == "Condition" and "Osteogenesis" in json.dumps(r)
    )
    append_ndjson(
        folder / "Patient.ndjson",
        "{not json",
        '{"resourceType": "Patient"}',  # no id
        '["an", "array"]',
        json.dumps({"resourceType": "Patient", "id": "p1", "birthDate": "1990"}),  # a duplicate: ignored
        json.dumps({"resourceType": "Patient", "id": "modifier", "modifierExtension": [{"url": "x"}]}),
        json.dumps({"resourceType": "Patient", "id": "bad-birth", "birthDate": 19}),
        "",
    )
    append_ndjson(
        folder / "Observation.ndjson",
        json.dumps(
            {"resourceType": "Observation", "id": "x1", "subject": {"reference": "Patient/p2"}, "status": 7}
        ),
        json.dumps({"resourceType": "Observation", "id": "x2", "subject": {"reference": "Patient/nobody"}}),
        json.dumps({"resourceType": "Observation", "id": "x3"}),  # no subject
    )
    # an OI Condition spelt with a JSON escape and one owned by nobody
    escaped = json.loads(oi_condition)
    escaped["id"] = "escaped"
    escaped["subject"] = {"reference": "Patient/p3"}
    append_ndjson(
        folder / "Condition.ndjson",
        json.dumps(escaped).replace('"Condition"', '"Cond\\u0069tion"', 1),
        json.dumps(
            {**json.loads(oi_condition), "id": "orphan-oi", "subject": {"reference": "Patient/ghost"}}
        ),
    )
    (folder / "Procedure.ndjson").unlink()  # empty
    return folder


def _lines(folder: Path, prefix: str) -> collections.Counter[str]:
    counter: collections.Counter[str] = collections.Counter()
    for path in folder.glob(f"{prefix}*.ndjson"):
        counter.update(path.read_text().splitlines())
    return counter


@pytest.fixture(scope="module")
def reference(export: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("sqlite")
    result = plan_folder(export, out, Planner(load_knowledge()), AT)
    return out, result.summary


def _same(reference: tuple[Path, object], out: Path, summary: object) -> None:
    ref_out, ref_summary = reference
    for prefix in ("CarePlan", "OperationOutcome"):
        assert _lines(out, prefix) == _lines(ref_out, prefix), prefix
    summary.gaps.sort()  # type: ignore[attr-defined]  # partitions finish in any order
    ref_summary.gaps.sort()  # type: ignore[attr-defined]
    assert summary == ref_summary


@pytest.mark.slow
def test_the_dask_engine_answers_as_the_index_does(
    export: Path, reference: tuple[Path, object], tmp_path: Path
) -> None:
    _, summary = reference
    # the export holds all the cases the comparison is about
    assert summary.planned > 20  # type: ignore[attr-defined]
    assert summary.errors >= 3  # type: ignore[attr-defined]
    assert summary.orphans >= 5  # type: ignore[attr-defined]
    result = plan_folder_dask(export, tmp_path, KARGS, AT, workers=2, blocksize=64 * 1024)
    _same(reference, tmp_path, result.summary)
    assert len(list(tmp_path.glob("CarePlan.*.ndjson"))) > 1  # partitioned
    careplans = _lines(tmp_path, "CarePlan")
    assert any('"Patient/p3"' in line for line in careplans)  # found through the escaped Condition
    # a second run into the same folder replaces the first, it does not add to it
    again = plan_folder_dask(export, tmp_path, KARGS, AT, workers=1)
    _same(reference, tmp_path, again.summary)


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    log = (tmp_path / "cluster.log").open("wb")
    procs = [
        subprocess.Popen(
            [
                str(bin_dir / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
            ],
            stdout=log,
            stderr=log,
            env=env,
        )
    ]
    try:
        time.sleep(1)
        procs.append(
            subprocess.Popen(
                [
                    str(bin_dir / "dask"),
                    "worker",
                    address,
                    "--nworkers",
                    "2",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                ],
                stdout=log,
                stderr=log,
                env=env,
            )
        )
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=20)
        log.close()


@pytest.mark.slow
def test_a_running_cluster_by_its_scheduler_address(
    export: Path, reference: tuple[Path, object], tmp_path: Path, scheduler: str
) -> None:
    run = subprocess.run(
        [
            sys.executable, "-m", "services.cli", "plan", "--at", AT.isoformat(), "--ndjson-dir", str(export),
            "--out", str(tmp_path), "--engine", "dask", "--scheduler", scheduler,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    ref_out, ref_summary = reference
    for prefix in ("CarePlan", "OperationOutcome"):
        assert _lines(tmp_path, prefix) == _lines(ref_out, prefix), prefix
    assert run.stderr.strip().splitlines()[-1] == ref_summary.line()  # type: ignore[attr-defined]
    counts = json.loads((tmp_path / "summary.json").read_text())
    assert counts["engine"] == "dask"
    assert counts["planned"] == ref_summary.planned  # type: ignore[attr-defined]


def test_without_dask_the_engine_says_what_to_install(
    export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services import cli

    monkeypatch.setitem(sys.modules, "services.bulk_dask", None)
    code = cli.main(["plan", "--ndjson-dir", str(export), "--out", str(tmp_path), "--engine", "dask"])
    assert code == 2
    assert "pip install 'oi-cds[dask]'" in capsys.readouterr().err


def test_the_output_folder_cannot_be_the_input(export: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from services import cli

    assert cli.main(["plan", "--ndjson-dir", str(export), "--out", str(export)]) == 2
    assert "must not be the --ndjson-dir folder" in capsys.readouterr().err
