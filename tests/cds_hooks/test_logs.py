"""The JSON request log: one parseable ASCII line per record, whatever a client put in the path."""

from __future__ import annotations

import json
import logging

import pytest

from services.cds_hooks.logs import JsonFormatter


def record(path: str) -> logging.LogRecord:
    rec = logging.LogRecord("oi_cds.request", logging.INFO, __file__, 1, "request", None, None)
    rec.fields = {"path": path, "status": 404}
    return rec


@pytest.mark.parametrize("path", ["/fhir/plain", "/fhir/\u2028x\x85y\x1cz", "/fhir/\udc9b\U00102472é"])
def test_each_record_is_one_ascii_line_that_parses_back(path: str) -> None:
    line = JsonFormatter().format(record(path))
    assert line.isascii()
    assert line.splitlines() == [line]
    assert json.loads(line)["path"] == path
    assert json.loads(line)["status"] == 404


def test_the_time_is_the_records_own_second() -> None:
    formatter = JsonFormatter()
    first, later = record("/a"), record("/b")
    later.created = first.created + 5
    stamps = [json.loads(formatter.format(r))["time"] for r in (first, later, first)]
    assert stamps[0] == stamps[2] != stamps[1]
