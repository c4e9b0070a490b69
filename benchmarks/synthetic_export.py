"""A synthetic Bulk Data export of N patients for the bulk engines (issue 15):

    python -m benchmarks.synthetic_export --patients 1000000 --out /var/tmp/export-1m
    python -m benchmarks.synthetic_export --patients 20000 --oi-rate 1 --out /var/tmp/oi-cohort

Patients without OI get records of realistic, skewed size (most small, a few hundred resources
for some): Conditions, Observations and MedicationRequests drawn from `benchmarks.big_record`'s
adult (common SNOMED CT problems and LOINC vital signs/labs, none in the knowledge's ValueSets).
Patients with OI, at `--oi-rate` (default 1 in 15,000, the population rate), are the shared
vignettes' records with new ids. One NDJSON file per resource type, as `$export` writes them;
the same seed gives the same files.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import IO, Any

import orjson

from benchmarks import big_record

VIGNETTES = Path(__file__).resolve().parent.parent / "tests" / "data" / "vignettes" / "bundles"
TYPES = ("Patient", "Condition", "Observation", "MedicationRequest", "Procedure", "ServiceRequest")


def _templates() -> dict[str, list[dict[str, Any]]]:
    prefetch = big_record.body()["prefetch"]
    return {
        "Condition": [e["resource"] for e in prefetch["conditions"]["entry"][:8]],
        "Observation": [e["resource"] for e in prefetch["observations"]["entry"][:30]],
        "MedicationRequest": [e["resource"] for e in prefetch["medications"]["entry"][:6]],
    }


def _vignettes() -> list[list[dict[str, Any]]]:
    records = []
    for path in sorted(VIGNETTES.glob("*.bundle.json")):
        records.append([e["resource"] for e in json.loads(path.read_text())["entry"]])
    return records


def _renamed(record: list[dict[str, Any]], suffix: str) -> list[dict[str, Any]]:
    """The record with every id and Patient reference made unique by `suffix`."""
    text = json.dumps(record)
    patient = next(r for r in record if r["resourceType"] == "Patient")
    old = patient["id"]
    # an export refers to a patient as Patient/<id>, whatever the source Bundle's fullUrls were
    for form in (f"Patient/{old}", f"urn:uuid:{old}"):
        text = text.replace(f'"{form}"', f'"Patient/{old}-{suffix}"')
    renamed: list[dict[str, Any]] = json.loads(text)
    for resource in renamed:
        resource["id"] = f"{resource['id']}-{suffix}"
    return renamed


def _count(rng: random.Random, mean: float, cap: int) -> int:
    # skewed like real records: most patients have few entries, some very many
    return min(cap, int(rng.expovariate(1 / mean))) if mean else 0


def write_export(
    out: Path,
    patients: int,
    oi_rate: float = 1 / 15_000,
    seed: int = 15,
    sizes: tuple[float, float, float] = (4.0, 12.0, 2.0),
) -> dict[str, int]:
    """Write the export; returns the number of lines per type and of OI patients."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    templates = _templates()
    vignettes = _vignettes()
    handles: dict[str, IO[bytes]] = {t: (out / f"{t}.ndjson").open("wb") for t in TYPES}
    counts = dict.fromkeys(TYPES, 0) | {"oi": 0}
    oi_every = round(1 / oi_rate) if oi_rate else 0
    try:
        for n in range(patients):
            if oi_every and n % oi_every == oi_every // 2:
                for resource in _renamed(vignettes[counts["oi"] % len(vignettes)], f"p{n}"):
                    handles[resource["resourceType"]].write(orjson.dumps(resource) + b"\n")
                    counts[resource["resourceType"]] += 1
                counts["oi"] += 1
                continue
            pid = f"p{n}"
            year = 1930 + rng.randrange(95)
            patient = {
                "resourceType": "Patient",
                "id": pid,
                "gender": rng.choice(("female", "male")),
                "birthDate": f"{year}-{1 + rng.randrange(12):02d}-{1 + rng.randrange(28):02d}",
            }
            handles["Patient"].write(orjson.dumps(patient) + b"\n")
            counts["Patient"] += 1
            subject = {"reference": f"Patient/{pid}"}
            for rtype, mean, cap in zip(templates, sizes, (40, 300, 40), strict=True):
                for i in range(_count(rng, mean, cap)):
                    resource = dict(rng.choice(templates[rtype]), id=f"{pid}-{rtype[0].lower()}{i}")
                    resource["subject"] = subject
                    handles[rtype].write(orjson.dumps(resource) + b"\n")
                    counts[rtype] += 1
    finally:
        for handle in handles.values():
            handle.close()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, required=True)
    parser.add_argument("--oi-rate", type=float, default=1 / 15_000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(json.dumps(write_export(args.out, args.patients, args.oi_rate, args.seed)))


if __name__ == "__main__":
    main()
