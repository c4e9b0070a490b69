"""Prometheus metrics. Labels are service ids, recommendation keys, statuses and reasons:
never patient data. Several workers count in one PROMETHEUS_MULTIPROC_DIR: `oi-cds serve
--workers N` makes one (services/cds_hooks/workers.py) unless it is set."""

from __future__ import annotations

import functools
import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

REQUESTS = Counter("oi_cds_requests_total", "HTTP requests", ["endpoint", "service", "status"])
LATENCY = Histogram(
    "oi_cds_request_seconds",
    "HTTP request duration",
    ["endpoint", "service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CARDS = Counter("oi_cds_cards_total", "Cards returned, by recommendation key", ["service", "key"])
PRECONDITION_FAILED = Counter("oi_cds_precondition_failed_total", "412 answers, by reason", ["reason"])
FHIR_CALLS = Counter("oi_cds_fhir_requests_total", "FHIR fallback requests, by outcome", ["outcome"])
FHIR_FAILURES = Counter(
    "oi_cds_fhir_failures_total",
    "FHIR fallback failures, by reason (the 412 itself stays generic)",
    ["reason"],
)
FHIR_LATENCY = Histogram("oi_cds_fhir_request_seconds", "FHIR fallback request duration")
SHED = Counter("oi_cds_shed_total", "Hook calls refused with 503 (over OI_CDS_MAX_CONCURRENT_HOOKS)")
FOREIGN_DROPPED = Counter(
    "oi_cds_foreign_resources_dropped_total",
    "Resources of another patient dropped before facts were read, by resource type",
    ["type"],
)
JWT_REJECTED = Counter("oi_cds_jwt_rejections_total", "Rejected CDS Hooks JWTs, by reason", ["reason"])

ENDPOINTS = {"cds-services": "discovery", "feedback": "feedback", "admin": "admin", "metrics": "metrics"}


def classify(path: str, services: set[str]) -> tuple[str, str]:
    """(endpoint kind, service id) from a path, with bounded label values."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "other", ""
    if parts[0] == "cds-services":
        if len(parts) == 1:
            return "discovery", ""
        service = parts[1] if parts[1] in services else "unknown"
        return ("feedback" if len(parts) == 3 and parts[2] == "feedback" else "hook"), service
    if parts[0] in ("healthz", "readyz"):
        return "health", ""
    return ENDPOINTS.get(parts[0], "other"), ""


def exposition() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


@functools.lru_cache(maxsize=4096)
def child(metric: Any, *labels: str) -> Any:
    """metric.labels(*labels), memoized: the hot path asks for the same few series on every
    call, and labels() costs more than the increment (the label values are bounded)."""
    return metric.labels(*labels)
