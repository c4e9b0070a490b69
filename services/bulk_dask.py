"""`oi-cds plan --ndjson-dir --engine dask`: the bulk path on a Dask cluster (local or remote).

The same answer as the single-process path (`services.bulk`), computed in parallel:

1. scan: every file is cut into byte ranges on line boundaries; each range is read once to
   count its lines, hash its Patients' references and find the patients with a Condition that
   may be OI (`may_have_oi`, the hook path's cheap scan). Only Patient and Condition lines are
   parsed here: the resource type is read by a regular expression unless the line could fool it.
2. map: every range is parsed and validated. The lines of candidate patients (an OI Condition:
   a small share of any population) go into a Dask dataframe; every other resource is checked
   against the Patients' hashes (a resource without its Patient is reported as the index does)
   and validated, and only its problems are kept.
3. the candidate rows are shuffled by patient reference (Dask's p2p shuffle, which spills to
   disk) and each patient's group goes to the unchanged planner (`plan_group`).
4. the Patients without an OI Condition never reach the rules: their ranges are read again and
   each gets the answer the planner gives a patient with no resources (no OI, or its errors).

Outputs are partitioned: `CarePlan.<part>.ndjson` and `OperationOutcome.<part>.ndjson` in the
output folder, which every worker must be able to write (a shared file system on a cluster).
Patient references are matched by a 64-bit hash in steps 1-2 (a collision among a population's
references is about as likely as 1 in 10^7 for 10 million patients).
"""

from __future__ import annotations

import itertools
import json
import operator
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from services.bulk import RESOURCE_TYPE, BulkResult, loads, ordered_files, orphan_problem, read_line
from services.plan_builder.batch import Outcome, Summary, orphan_outcome, patient_error, plan_group
from services.plan_builder.bundle import PatientGroup
from services.plan_builder.errors import PlanInputError
from services.plan_builder.planner import Planner
from services.plan_builder.settings import PlanSettings
from services.plan_builder.structural import validate_resource
from services.plan_builder.types import JSON

BLOCKSIZE = 32 * 1024 * 1024
_FILE_SHIFT = 40  # seq = file index << 40 | byte offset: the index's order (files < 1 TB)


@dataclass(frozen=True)
class Segment:
    path: str
    name: str
    file_index: int
    start: int
    end: int


@dataclass(frozen=True)
class KnowledgeArgs:
    """What a worker needs to build the same Planner (workers load the knowledge once)."""

    knowledge_dir: str | None
    site_dir: str | None
    settings: str  # PlanSettings as JSON


@lru_cache(maxsize=4)
def _planner(args: KnowledgeArgs) -> Planner:
    from services.plan_builder import load_knowledge

    knowledge = load_knowledge(
        Path(args.knowledge_dir) if args.knowledge_dir else None,
        site_dir=Path(args.site_dir) if args.site_dir else None,
    )
    return Planner(knowledge, PlanSettings.model_validate_json(args.settings))


def segments(folder: Path, blocksize: int = BLOCKSIZE) -> list[Segment]:
    """Byte ranges of whole lines, about `blocksize` each, in the index's file order."""
    out = []
    for index, path in enumerate(ordered_files(folder)):
        size = path.stat().st_size
        start = 0
        with path.open("rb") as fh:
            while start < size:
                fh.seek(min(start + blocksize, size))
                if fh.tell() < size:
                    fh.readline()
                end = min(fh.tell(), size)
                out.append(Segment(str(path), path.name, index, start, end))
                start = end
    return out


def _lines(segment: Segment) -> Iterable[tuple[int, bytes]]:
    """(byte offset in the file, line) for every line of the range, blank ones included."""
    with open(segment.path, "rb") as fh:
        fh.seek(segment.start)
        data = fh.read(segment.end - segment.start)
    offset = segment.start
    for line in data.split(b"\n"):
        yield offset, line
        offset += len(line) + 1
    # a range that ends with a newline yields one empty line past its end: harmless (blank)


def _type_of(line: bytes) -> bytes | None:
    """The top-level resourceType, or None when only parsing can tell (several resourceType
    keys: contained resources; an escape sequence; no match)."""
    if b"\\u" in line or line.count(b'"resourceType"') != 1:
        return None
    match = RESOURCE_TYPE.search(line)
    return match.group(1) if match else None


def _hashes(refs: list[str]) -> Any:
    import numpy as np
    import pandas as pd

    if not refs:
        return np.empty(0, dtype=np.uint64)
    return pd.util.hash_array(np.array(refs, dtype=object))


@dataclass
class Scanned:
    lines: int
    patient_hashes: Any  # numpy uint64
    patient_seqs: list[int]
    candidates: set[str]


def scan(segment: Segment, kargs: KnowledgeArgs) -> Scanned:
    planner = _planner(kargs)
    refs: list[str] = []
    seqs: list[int] = []
    candidates: set[str] = set()
    lines = 0
    for offset, line in _lines(segment):
        if offset >= segment.end:
            break
        lines += 1
        rtype = _type_of(line)
        if rtype not in (None, b"Patient", b"Condition") or not line.strip():
            continue
        read = read_line(line, "")
        if read is None or isinstance(read, PlanInputError):
            continue
        kind, ref, resource = read
        if kind == "Patient":
            refs.append(ref)
            seqs.append(segment.file_index << _FILE_SHIFT | offset)
        elif kind == "Condition" and planner.may_have_oi([resource]):
            candidates.add(ref)
    return Scanned(lines, _hashes(refs), seqs, candidates)


@dataclass
class Mapped:
    problems: list[JSON]  # issues of lines no patient owns (not JSON, no id, orphans)
    resource_problems: list[tuple[str, int, JSON]]  # (patient ref, seq, issue) of non-candidates
    has_patients: bool


_COLUMNS = ("ref", "seq", "kind", "line", "where")


def _frame(rows: list[tuple[str, int, int, str, str]]) -> Any:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(_COLUMNS))
    return frame.astype(
        {"ref": "string", "seq": "int64", "kind": "int8", "line": "string", "where": "string"}
    )


def map_segment(segment: Segment, first_line: int, candidates: set[str], patients: Any) -> tuple[Any, Mapped]:
    import numpy as np

    rows: list[tuple[str, int, int, str, str]] = []
    mapped = Mapped([], [], False)
    # non-candidates' (ref, seq, where, problem or None), checked for their Patient at the end;
    # the parsed resources themselves are not kept (holding them costs the collector dearly)
    pending: list[tuple[str, int, str, JSON | None]] = []
    number = first_line - 1
    for offset, line in _lines(segment):
        if offset >= segment.end:
            break
        number += 1
        if not line.strip():
            continue
        where = f"{segment.name} line {number}"
        read = read_line(line, where)
        if read is None:
            continue
        if isinstance(read, PlanInputError):
            mapped.problems.append(read.to_issue())
            continue
        kind, ref, resource = read
        seq = segment.file_index << _FILE_SHIFT | offset
        if ref in candidates:
            rows.append((ref, seq, 0 if kind == "Patient" else 1, line.decode("utf-8"), where))
        elif kind == "Patient":
            mapped.has_patients = True
        else:
            problem: JSON | None = None
            try:
                validate_resource(resource, where)
            except PlanInputError as exc:
                problem = exc.to_issue()
            pending.append((ref, seq, where, problem))
    if pending:
        hashes = _hashes([ref for ref, _, _, _ in pending])
        found = np.minimum(np.searchsorted(patients, hashes), max(len(patients) - 1, 0))
        present = (patients[found] == hashes) if len(patients) else np.zeros(len(pending), dtype=bool)
        for ok, (ref, seq, where, problem) in zip(present.tolist(), pending, strict=True):
            if not ok:  # the index never validates a resource without its Patient
                mapped.problems.append(orphan_problem(ref, where).to_issue())
            elif problem is not None:
                mapped.resource_problems.append((ref, seq, problem))
    return _frame(rows), mapped


class _Writer:
    """This task's part of the output: files opened on first use, named by the part."""

    def __init__(self, out: Path, part: str) -> None:
        self.out, self.part = out, part
        self.handles: dict[str, IO[str]] = {}
        self.summary = Summary()

    def write(self, outcome: Outcome) -> None:
        self.summary.add(outcome)
        name = "CarePlan" if outcome.kind == "careplan" else "OperationOutcome"
        handle = self.handles.get(name)
        if handle is None:
            handle = self.handles[name] = (self.out / f"{name}.{self.part}.ndjson").open("w")
        handle.write(json.dumps(outcome.resource, separators=(",", ":")) + "\n")

    def close(self) -> Summary:
        for handle in self.handles.values():
            handle.close()
        return self.summary


def plan_partition(frame: Any, kargs: KnowledgeArgs, at: date, out: str, part: str) -> Summary:
    """The candidates' groups of one shuffled partition, planned as the index path plans them."""
    planner = _planner(kargs)
    writer = _Writer(Path(out), part)
    # plain tuples, not pandas slices: a dense cohort has a group per row or two
    ordered = frame.sort_values(["ref", "seq"])
    rows = zip(ordered["ref"], ordered["kind"], ordered["line"], ordered["where"], strict=True)
    for ref, group_rows in itertools.groupby(rows, key=operator.itemgetter(0)):
        members = list(group_rows)
        patient = next((line for _, kind, line, _ in members if kind == 0), None)
        resources = [(line, where) for _, kind, line, where in members if kind == 1]
        if patient is None:
            for _, where in resources:
                writer.write(orphan_outcome(orphan_problem(str(ref), str(where))))
            continue
        group = PatientGroup(0, loads(patient), str(ref))
        try:
            validate_resource(group.patient, str(ref))
        except PlanInputError as exc:
            group.problems.append(exc)
        for line, where in resources:
            try:
                group.resources.append(validate_resource(loads(line), str(where)))
            except PlanInputError as exc:
                group.problems.append(exc)
        writer.write(plan_group(group, planner, at))
    return writer.close()


def plan_others(
    segment: Segment,
    kargs: KnowledgeArgs,
    at: date,
    out: str,
    part: str,
    candidates: set[str],
    first_seq: dict[int, int],
    problems: dict[str, list[JSON]],
) -> Summary:
    """The patients without an OI Condition: what the planner answers for no resources, or
    the errors of their records (a duplicate Patient line after the first is ignored, as the
    index ignores it)."""
    planner = _planner(kargs)
    writer = _Writer(Path(out), part)
    for offset, line in _lines(segment):
        if offset >= segment.end:
            break
        if not line.strip() or _type_of(line) not in (None, b"Patient"):
            continue
        read = read_line(line, "")
        if read is None or isinstance(read, PlanInputError) or read[0] != "Patient":
            continue
        _, ref, resource = read
        seq = segment.file_index << _FILE_SHIFT | offset
        if ref in candidates or (first_seq and first_seq.get(int(_hashes([ref])[0]), seq) != seq):
            continue
        issues: list[JSON] = []
        try:
            validate_resource(resource, ref)
        except PlanInputError as exc:
            issues.append(exc.to_issue())
        issues.extend(problems.get(ref, ()))
        if issues:
            writer.write(patient_error(ref, issues))
        else:
            writer.write(plan_group(PatientGroup(0, resource, ref), planner, at))
    return writer.close()


def _client(scheduler: str | None, workers: int | None) -> Any:
    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    return Client(cluster)


def _progress(futures: list[Any], desc: str, stream: IO[str] | None) -> list[Any]:
    from dask.distributed import as_completed
    from tqdm import tqdm

    with tqdm(total=len(futures), desc=desc, unit="part", file=stream, disable=stream is None) as bar:
        for _ in as_completed(futures):
            bar.update(1)
    return [f.result() for f in futures]


def plan_folder_dask(
    folder: Path,
    out: Path,
    kargs: KnowledgeArgs,
    at: date,
    scheduler: str | None = None,
    workers: int | None = None,
    blocksize: int = BLOCKSIZE,
    progress: IO[str] | None = None,
) -> BulkResult:
    import dask
    import dask.dataframe as dd
    import numpy as np
    from dask.delayed import delayed

    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("CarePlan.*ndjson"), *out.glob("OperationOutcome.*ndjson")]:
        old.unlink()  # a folder of partitions is one answer: never mix two runs
    parts = segments(folder, blocksize)
    summary = Summary()
    started = time.perf_counter()
    client = _client(scheduler, workers)
    phases: dict[str, float] = {"cluster": time.perf_counter() - started}
    try:
        mark = time.perf_counter()
        scanned: list[Scanned] = _progress(
            [client.submit(scan, s, kargs, pure=False) for s in parts], "scan", progress
        )
        firsts, line = [], 0
        for seg, counted in zip(parts, scanned, strict=True):
            if seg.start == 0:
                line = 0
            firsts.append(line + 1)
            line += counted.lines
        candidates = set().union(*(r.candidates for r in scanned))
        hashes = [r.patient_hashes for r in scanned]
        unique = np.unique(np.concatenate(hashes)) if hashes else np.empty(0, np.uint64)
        first_seq = _first_seqs(scanned)
        patients = client.scatter([unique], broadcast=True)[0]
        wanted = client.scatter([candidates], broadcast=True)[0]
        mapped_futures = [
            client.submit(map_segment, s, first, wanted, patients, pure=False)
            for s, first in zip(parts, firsts, strict=True)
        ]
        phases["scan"] = time.perf_counter() - mark
        mark = time.perf_counter()
        # only the small part comes back to the driver; the candidates' rows stay on the workers
        mapped: list[Mapped] = _progress(
            [client.submit(operator.getitem, f, 1, pure=False) for f in mapped_futures], "map", progress
        )
        phases["map"] = time.perf_counter() - mark
        mark = time.perf_counter()
        problems: dict[str, list[tuple[int, JSON]]] = {}
        writer = _Writer(out, "rest")
        for result in mapped:
            for issue in result.problems:
                writer.write(orphan_outcome(issue))
            for ref, seq, issue in result.resource_problems:
                problems.setdefault(ref, []).append((seq, issue))
        summary.merge(writer.close())
        ordered = {
            ref: [issue for _, issue in sorted(items, key=operator.itemgetter(0))]
            for ref, items in problems.items()
        }
        frames = [client.submit(operator.getitem, f, 0, pure=False) for f in mapped_futures]
        tasks = []
        if candidates:
            meta = _frame([])
            with dask.config.set({"dataframe.shuffle.method": "p2p"}):
                ddf = dd.from_delayed(frames, meta=meta, verify_meta=False)
                shuffled = ddf.shuffle("ref", npartitions=max(1, min(len(parts), len(candidates))))
                for i, piece in enumerate(shuffled.to_delayed()):
                    tasks.append(
                        client.compute(delayed(plan_partition)(piece, kargs, at, str(out), f"d{i:05d}"))
                    )
        shared = client.scatter([(candidates, first_seq, ordered)], broadcast=True)[0]
        for i, (seg, result) in enumerate(zip(parts, mapped, strict=True)):
            if result.has_patients:
                tasks.append(
                    client.submit(_plan_others, seg, kargs, at, str(out), f"p{i:05d}", shared, pure=False)
                )
        for part in _progress(tasks, "plan", progress):
            summary.merge(part)
        phases["shuffle and plan"] = time.perf_counter() - mark
        peaks = client.run(_peak_rss).values()
    finally:
        client.close()
        cluster = getattr(client, "cluster", None)
        if cluster is not None and scheduler is None:
            cluster.close()
    files = {p.name: p for p in sorted(out.glob("*.ndjson"))}
    if progress is not None:
        progress.write(
            "dask: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items())
            + f", workers {len(peaks)}, worker peak RSS {max(peaks, default=0) / 2**20:.0f} MB"
            + f", driver peak RSS {_peak_rss() / 2**20:.0f} MB\n"
        )
    return BulkResult(summary, files)


def _peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _plan_others(
    segment: Segment,
    kargs: KnowledgeArgs,
    at: date,
    out: str,
    part: str,
    shared: tuple[set[str], dict[int, int], dict[str, list[JSON]]],
) -> Summary:
    return plan_others(segment, kargs, at, out, part, *shared)


def _first_seqs(scanned: list[Scanned]) -> dict[int, int]:
    """For the (rare) Patients exported more than once: their reference's hash -> the first
    line's position (the index keeps the first and ignores the others)."""
    import numpy as np

    if not scanned:
        return {}
    hashes = np.concatenate([r.patient_hashes for r in scanned])
    seqs = np.concatenate([np.asarray(r.patient_seqs, dtype=np.int64) for r in scanned])
    unique, counts = np.unique(hashes, return_counts=True)
    duplicated = unique[counts > 1]
    if not len(duplicated):
        return {}
    mask = np.isin(hashes, duplicated)
    first: dict[int, int] = {}
    for h, seq in zip(hashes[mask].tolist(), seqs[mask].tolist(), strict=True):
        first[h] = min(seq, first.get(h, seq))
    return first
