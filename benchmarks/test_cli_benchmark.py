"""`oi-cds plan` end to end over 10,000 patients, against `python -c json load+dump` of the same file."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.conftest import many_patients

PATIENTS = 10_000


@pytest.fixture(scope="module")
def bundle_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "patients.json"
    path.write_text(json.dumps(many_patients(PATIENTS)))
    return path


def _run(args: list[str]) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.benchmark(group="cli-10k")
def test_baseline_python_json_load_dump(benchmark: Any, bundle_file: Path) -> None:
    code = "import json,sys; json.dump(json.load(open(sys.argv[1])), sys.stdout)"
    benchmark.pedantic(_run, args=([sys.executable, "-c", code, str(bundle_file)],), rounds=3, iterations=1)


@pytest.mark.benchmark(group="cli-10k")
def test_oi_cds_plan_10k(benchmark: Any, bundle_file: Path) -> None:
    args = [sys.executable, "-m", "services.cli", "plan", "--at", "2026-06-01", str(bundle_file)]
    benchmark.pedantic(_run, args=(args,), rounds=3, iterations=1)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    benchmark.extra_info["children_peak_rss_mib"] = round(peak_kib / 1024, 1)
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    assert out.stderr.startswith(f"patients read: {PATIENTS}")
