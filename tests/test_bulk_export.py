"""`oi-cds export`: FHIR Bulk Data $export against the SMART reference bulk-data-server (nobody
here wrote it), and the failure modes it cannot produce through respx.

The reference server is looked for at OI_CDS_BULK_DATA_SERVER (default /var/tmp/bulk-data-server:
a checkout of smart-on-fhir/bulk-data-server with its npm dependencies installed; docs/bulk-export.md
says how). Each run imports the shared vignettes into a database of a private copy, so the
export holds patients with OI; without the server these tests skip and say why.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from services.bulk_export import (
    ClientKey,
    Exporter,
    ExportError,
    ExportRequest,
    Tokens,
    knowledge_request,
    retry_after,
)
from services.cds_hooks.prefetch import observation_codes
from services.plan_builder import Planner, load_knowledge
from services.plan_builder.batch import plan_bundle
from tests.conftest import VIGNETTES
from tests.servers import free_port

BDS = Path(os.environ.get("OI_CDS_BULK_DATA_SERVER", "/var/tmp/bulk-data-server"))
AT = "2026-06-01"
PRACTITIONER = {  # the server's import attaches its sample documents to a Practitioner
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [
        {
            "fullUrl": "urn:uuid:6a3e1b36-0000-4000-8000-000000000001",
            "resource": {"resourceType": "Practitioner", "id": "6a3e1b36-0000-4000-8000-000000000001"},
        }
    ],
}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


@pytest.fixture(scope="module")
def bulk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (BDS / "node_modules" / ".bin" / "ts-node").exists() or shutil.which("node") is None:
        pytest.skip(
            f"the SMART reference bulk-data-server is not installed at {BDS} "
            "(set OI_CDS_BULK_DATA_SERVER; docs/bulk-export.md says how to install it)"
        )
    tmp = tmp_path_factory.mktemp("bulk-data-server")
    copy = tmp / "server"
    copy.mkdir()
    for item in BDS.iterdir():
        if item.name in ("node_modules", "data", "jobs", ".git") or item.name.startswith("database"):
            continue
        (shutil.copytree if item.is_dir() else shutil.copy)(item, copy / item.name)
    (copy / "node_modules").symlink_to(BDS / "node_modules")
    (copy / "data").mkdir()
    (copy / "jobs").mkdir()
    shutil.copy(BDS / "data" / "import.ts", copy / "data" / "import.ts")
    bundles = tmp / "bundles"
    shutil.copytree(VIGNETTES / "bundles", bundles)
    (bundles / "practitioner.json").write_text(json.dumps(PRACTITIONER))
    ts_node = str(copy / "node_modules" / ".bin" / "ts-node")
    run = subprocess.run(
        [ts_node, "--transpile-only", "data/import.ts", "-d", str(bundles)],
        cwd=copy,
        capture_output=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PORT": str(port), "BASE_URL": base, "NODE_ENV": "production"}
    with (tmp / "server.log").open("wb") as log:
        proc = subprocess.Popen([ts_node, "--transpile-only", "."], cwd=copy, env=env, stdout=log, stderr=log)
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/fhir/metadata", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, (tmp / "server.log").read_text()[-2000:]
                import time

                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _largest_group(base: str) -> tuple[str, int]:
    bundle = httpx.get(f"{base}/fhir/Group", headers={"Accept": "application/fhir+json"}).json()
    groups = [(e["resource"]["id"], e["resource"].get("quantity", 0)) for e in bundle["entry"]]
    return max(groups, key=lambda g: g[1])


def _lines(folder: Path, prefix: str) -> collections.Counter[str]:
    counter: collections.Counter[str] = collections.Counter()
    for path in folder.glob(f"{prefix}*.ndjson"):
        counter.update(path.read_text().splitlines())
    return counter


def _secure(base: str) -> str:
    sim = base64.urlsafe_b64encode(json.dumps({"secure": 1}).encode()).decode().rstrip("=")
    return f"{base}/{sim}/fhir"


@pytest.mark.slow
def test_group_export_plans_as_the_bundles_do(bulk_server: str, tmp_path: Path) -> None:
    group, members = _largest_group(bulk_server)
    export = tmp_path / "export"
    run = _cli(
        "export", "--fhir-server", f"{bulk_server}/fhir", "--group", group, "--out", str(export),
        "--allow", bulk_server,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["resources"]["Patient"] == members
    assert "download" in run.stderr  # the progress bar
    manifest = json.loads((export / "export-manifest.json").read_text())
    for entry in manifest["files"]:  # what was recorded is what is on disk
        path = export / entry["name"]
        assert path.stat().st_size == entry["bytes"]
        assert len(path.read_text().splitlines()) == entry["lines"]
    # the same CarePlans from both engines, and from each vignette's own Bundle
    outs = {}
    for engine in ("sqlite", "dask"):
        outs[engine] = tmp_path / engine
        plan = _cli(
            "plan", "--at", AT, "--ndjson-dir", str(export), "--out", str(outs[engine]), "--engine", engine
        )
        assert plan.returncode == 0, plan.stderr
    assert _lines(outs["sqlite"], "CarePlan") == _lines(outs["dask"], "CarePlan")
    assert _lines(outs["sqlite"], "OperationOutcome") == _lines(outs["dask"], "OperationOutcome")
    careplans = [json.loads(line) for line in _lines(outs["sqlite"], "CarePlan")]
    assert careplans, "the group holds patients with OI"
    planner = Planner(load_knowledge())
    by_patient = {}
    for path in sorted((VIGNETTES / "bundles").glob("*.json")):
        doc = json.loads(path.read_text())
        for outcome in plan_bundle(doc, planner, date.fromisoformat(AT)):
            if outcome.kind == "careplan":
                pid = next(
                    e["resource"]["id"] for e in doc["entry"] if e["resource"]["resourceType"] == "Patient"
                )
                by_patient[f"Patient/{pid}"] = sorted(outcome.keys)
    for careplan in careplans:
        keys = sorted(a["detail"]["code"]["coding"][0]["code"] for a in careplan["activity"])
        assert keys == by_patient[careplan["subject"]["reference"]]

    # a second run into the same folder finds every file complete and fetches nothing again
    again = _cli(
        "export", "--fhir-server", f"{bulk_server}/fhir", "--group", group, "--out", str(export),
        "--allow", bulk_server,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert f"({len(manifest['files'])} already complete)" in again.stderr


@pytest.mark.slow
def test_files_elsewhere_are_not_fetched_unless_allowed(bulk_server: str, tmp_path: Path) -> None:
    # the reference server puts its files under /<settings>/fhir/bulkfiles, outside /fhir
    run = _cli("export", "--fhir-server", f"{bulk_server}/fhir", "--out", str(tmp_path / "x"), "--patients")
    assert run.returncode == 2
    outcome = json.loads(run.stderr[run.stderr.index("{") :])
    assert outcome["issue"][0]["code"] == "security"
    assert "not under an allow-listed base" in outcome["issue"][0]["diagnostics"]
    assert not list((tmp_path / "x").glob("*.ndjson"))


def _keys(kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if kind == "EC":
        key: Any = ec.generate_private_key(ec.SECP384R1())
        private = json.loads(ECAlgorithm.to_jwk(key)) | {"alg": "ES384", "kid": "ec-1"}
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = json.loads(RSAAlgorithm.to_jwk(key)) | {"alg": "RS384", "kid": "rsa-1"}
    public = {k: v for k, v in private.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "key_ops")}
    return private, public


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["EC", "RSA"])
def test_backend_services_authorization(bulk_server: str, tmp_path: Path, kind: str) -> None:
    private, public = _keys(kind)
    client_id = httpx.post(
        f"{bulk_server}/auth/register", data={"jwks": json.dumps({"keys": [public]}), "dur": "15"}
    ).text
    key_file = tmp_path / "key.jwks"
    key_file.write_text(json.dumps({"keys": [private]}))
    server = _secure(bulk_server)
    group, _ = _largest_group(bulk_server)
    common = ["export", "--fhir-server", server, "--group", group, "--allow", bulk_server]
    run = _cli(*common, "--out", str(tmp_path / "ok"), "--client-id", client_id, "--key", str(key_file))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["resources"].get("Patient", 0) > 0, run.stderr
    # no credentials: the server's 401 is said in words
    run = _cli(*common, "--out", str(tmp_path / "none"))
    assert run.returncode == 2
    assert "requires authorization" in run.stderr
    # another key than the registered one: the token endpoint refuses it
    other, _ = _keys(kind)
    key_file.write_text(json.dumps(other))
    run = _cli(*common, "--out", str(tmp_path / "wrong"), "--client-id", client_id, "--key", str(key_file))
    assert run.returncode == 2
    assert "the token endpoint refused the client" in run.stderr
    assert private["d"] not in run.stderr + run.stdout


def test_cli_refuses_half_credentials_and_a_bad_url(tmp_path: Path) -> None:
    run = _cli(
        "export", "--fhir-server", "http://127.0.0.1:1/fhir", "--out", str(tmp_path), "--client-id", "x"
    )
    assert run.returncode == 2
    assert "--client-id and --key go together" in run.stderr
    run = _cli("export", "--fhir-server", "file:///etc/passwd", "--out", str(tmp_path))
    assert run.returncode == 2
    assert "not a plain http(s) URL" in run.stderr
    _, public = _keys("EC")
    key = tmp_path / "public.jwks"
    key.write_text(json.dumps({"keys": [public]}))
    common = [
        "export",
        "--fhir-server",
        "http://127.0.0.1:1/fhir",
        "--out",
        str(tmp_path),
        "--client-id",
        "x",
    ]
    run = _cli(*common, "--key", str(key))
    assert run.returncode == 2
    assert "holds no private RSA or EC key" in run.stderr
    run = _cli(*common, "--key", str(tmp_path / "absent.jwks"))
    assert run.returncode == 2
    assert "cannot read the client key" in run.stderr


# -- the failure modes, through respx ------------------------------------------------------

BASE = "https://bulk.example.org/fhir"
FILES = "https://files.example.org/job1"
PATIENTS = b'{"resourceType":"Patient","id":"a"}\n{"resourceType":"Patient","id":"b"}\n'


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def _manifest(
    output: list[dict[str, Any]], error: list[dict[str, Any]] | None = None, token: bool = False
) -> dict[str, Any]:
    return {
        "transactionTime": "2026-12-01T00:00:00Z",
        "request": f"{BASE}/$export",
        "requiresAccessToken": token,
        "output": output,
        "error": error or [],
    }


def _exporter(http: httpx.AsyncClient, out: Path, sleeps: Sleeps, **kwargs: Any) -> Exporter:
    return Exporter(http, [BASE, FILES], out, sleep=sleeps, retries=3, **kwargs)


def _kickoff(mock: respx.MockRouter) -> None:
    mock.get(url__startswith=f"{BASE}/$export").mock(
        return_value=httpx.Response(202, headers={"Content-Location": f"{BASE}/status/1"})
    )
    mock.delete(f"{BASE}/status/1").mock(return_value=httpx.Response(202))


@pytest.mark.anyio
async def test_retry_after_and_progress_are_honoured(tmp_path: Path) -> None:
    sleeps = Sleeps()
    with respx.mock(assert_all_called=True) as mock:
        mock.get(url__startswith=f"{BASE}/$export").mock(
            side_effect=[
                httpx.Response(429, headers={"Retry-After": "7"}),
                httpx.Response(202, headers={"Content-Location": f"{BASE}/status/1"}),
            ]
        )
        mock.get(f"{BASE}/status/1").mock(
            side_effect=[
                httpx.Response(202, headers={"X-Progress": "50% done", "Retry-After": "3"}),
                httpx.Response(
                    200, json=_manifest([{"type": "Patient", "url": f"{FILES}/p.ndjson", "count": 2}])
                ),
            ]
        )
        mock.get(f"{FILES}/p.ndjson").mock(return_value=httpx.Response(200, content=PATIENTS))
        mock.delete(f"{BASE}/status/1").mock(return_value=httpx.Response(202))
        async with httpx.AsyncClient() as http:
            result = await _exporter(http, tmp_path, sleeps).run(ExportRequest(BASE, types=("Patient",)))
    assert sleeps.delays == [7.0, 3.0]
    assert (tmp_path / "Patient.1.ndjson").read_bytes() == PATIENTS
    assert result.resources() == {"Patient": 2}


class _Cut(httpx.AsyncByteStream):
    """A body that breaks off after its first bytes, as a dropped connection does."""

    def __init__(self, first: bytes) -> None:
        self.first = first

    async def __aiter__(self) -> Any:
        yield self.first
        raise httpx.ReadError("connection reset")


@pytest.mark.anyio
async def test_a_broken_download_resumes_with_a_range_request(tmp_path: Path) -> None:
    body = b"".join(b'{"resourceType":"Patient","id":"p%d"}\n' % i for i in range(200))
    half = len(body) // 2
    ranges: list[str | None] = []

    def serve(request: httpx.Request) -> httpx.Response:
        ranges.append(request.headers.get("Range"))
        if len(ranges) == 1:
            return httpx.Response(200, stream=_Cut(body[:half]))
        if len(ranges) == 2:
            return httpx.Response(503, headers={"Retry-After": "1"})
        start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
        return httpx.Response(206, content=body[start:])

    sleeps = Sleeps()
    with respx.mock() as mock:
        _kickoff(mock)
        mock.get(f"{BASE}/status/1").mock(
            return_value=httpx.Response(
                200, json=_manifest([{"type": "Patient", "url": f"{FILES}/p.ndjson", "count": 200}])
            )
        )
        mock.get(f"{FILES}/p.ndjson").mock(side_effect=serve)
        async with httpx.AsyncClient() as http:
            await _exporter(http, tmp_path, sleeps).run(ExportRequest(BASE, types=("Patient",)))
    assert ranges == [None, f"bytes={half}-", f"bytes={half}-"]
    assert (tmp_path / "Patient.1.ndjson").read_bytes() == body
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.anyio
async def test_an_expired_token_is_renewed_once(tmp_path: Path) -> None:
    private, _ = _keys("EC")
    issued: list[str] = []

    def token(request: httpx.Request) -> httpx.Response:
        form = dict(x.split("=", 1) for x in request.content.decode().split("&"))
        assert form["grant_type"] == "client_credentials"
        issued.append(f"t{len(issued) + 1}")
        return httpx.Response(
            200, json={"access_token": issued[-1], "expires_in": 300, "token_type": "bearer"}
        )

    def file(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != f"Bearer {issued[-1]}" or len(issued) < 2:
            return httpx.Response(401)
        return httpx.Response(200, content=PATIENTS)

    with respx.mock() as mock:
        _kickoff(mock)
        mock.post(f"{BASE}/auth/token").mock(side_effect=token)
        mock.get(f"{BASE}/status/1").mock(
            return_value=httpx.Response(
                200, json=_manifest([{"type": "Patient", "url": f"{FILES}/p.ndjson"}], token=True)
            )
        )
        files = mock.get(f"{FILES}/p.ndjson").mock(side_effect=file)
        async with httpx.AsyncClient() as http:
            tokens = Tokens(ClientKey("client-1", private), f"{BASE}/auth/token")
            await _exporter(http, tmp_path, Sleeps(), tokens=tokens).run(
                ExportRequest(BASE, types=("Patient",))
            )
    assert issued == ["t1", "t2"]
    assert files.call_count == 2
    assert (tmp_path / "Patient.1.ndjson").read_bytes() == PATIENTS


@pytest.mark.anyio
async def test_error_files_are_kept_apart_and_counted(tmp_path: Path) -> None:
    errors = b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing"}]}\n' * 3
    with respx.mock() as mock:
        _kickoff(mock)
        mock.get(f"{BASE}/status/1").mock(
            return_value=httpx.Response(
                200,
                json=_manifest(
                    [{"type": "Patient", "url": f"{FILES}/p.ndjson"}],
                    [{"type": "OperationOutcome", "url": f"{FILES}/e.ndjson"}],
                ),
            )
        )
        mock.get(f"{FILES}/p.ndjson").mock(return_value=httpx.Response(200, content=PATIENTS))
        mock.get(f"{FILES}/e.ndjson").mock(return_value=httpx.Response(200, content=errors))
        async with httpx.AsyncClient() as http:
            result = await _exporter(http, tmp_path, Sleeps()).run(ExportRequest(BASE, types=("Patient",)))
    assert result.error_issues == 3
    assert "the server reported 3 errors" in result.line()
    assert (tmp_path / "errors" / "OperationOutcome.1.ndjson").read_bytes() == errors
    assert not (tmp_path / "OperationOutcome.1.ndjson").exists()  # never read as input by `plan`


@pytest.mark.anyio
async def test_a_manifest_cannot_send_the_client_elsewhere(tmp_path: Path) -> None:
    with respx.mock(assert_all_called=False) as mock:  # the job is kept: no DELETE
        _kickoff(mock)
        mock.get(f"{BASE}/status/1").mock(
            return_value=httpx.Response(
                200,
                json=_manifest(
                    [{"type": "Patient", "url": "http://169.254.169.254/latest/meta-data"}], token=True
                ),
            )
        )
        elsewhere = mock.get(url__startswith="http://169.254.169.254").mock(return_value=httpx.Response(200))
        async with httpx.AsyncClient() as http:
            with pytest.raises(ExportError, match="not under an allow-listed base") as caught:
                await _exporter(http, tmp_path, Sleeps()).run(ExportRequest(BASE, types=("Patient",)))
    assert caught.value.code == "security"
    assert not elsewhere.called


@pytest.mark.anyio
async def test_a_file_shorter_than_its_count_is_refused(tmp_path: Path) -> None:
    with respx.mock(assert_all_called=False) as mock:  # the job is kept: no DELETE
        _kickoff(mock)
        mock.get(f"{BASE}/status/1").mock(
            return_value=httpx.Response(
                200, json=_manifest([{"type": "Patient", "url": f"{FILES}/p.ndjson", "count": 5}])
            )
        )
        mock.get(f"{FILES}/p.ndjson").mock(return_value=httpx.Response(200, content=PATIENTS))
        async with httpx.AsyncClient() as http:
            with pytest.raises(ExportError, match="manifest says 5 resources, the file has 2"):
                await _exporter(http, tmp_path, Sleeps()).run(ExportRequest(BASE, types=("Patient",)))
    assert not (tmp_path / "Patient.1.ndjson").exists()


@pytest.mark.anyio
async def test_server_errors_are_retried_then_reported(tmp_path: Path) -> None:
    sleeps = Sleeps()
    with respx.mock(assert_all_called=False) as mock:  # the job is kept: no DELETE
        _kickoff(mock)
        status = mock.get(f"{BASE}/status/1").mock(
            return_value=httpx.Response(
                500,
                json={
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "exception", "diagnostics": "database down"}],
                },
            )
        )
        async with httpx.AsyncClient() as http:
            with pytest.raises(ExportError, match="HTTP 500: database down") as caught:
                await _exporter(http, tmp_path, sleeps).run(ExportRequest(BASE, types=("Patient",)))
    assert caught.value.code == "transient"
    assert status.call_count == 4  # the first try and three retries
    assert sleeps.delays == [1.0, 2.0, 4.0]
    # the job is remembered: the next run polls it again instead of starting another export
    assert json.loads((tmp_path / "export-state.json").read_text())["status"] == f"{BASE}/status/1"


@pytest.mark.anyio
async def test_a_refused_kickoff_says_why(tmp_path: Path) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": "Group unknown"}],
    }
    with respx.mock() as mock:
        mock.get(url__startswith=f"{BASE}/Group/g1/$export").mock(
            return_value=httpx.Response(404, json=outcome)
        )
        async with httpx.AsyncClient() as http:
            with pytest.raises(ExportError, match="kick-off answered HTTP 404: Group unknown"):
                await _exporter(http, tmp_path, Sleeps()).run(
                    ExportRequest(BASE, group="g1", types=("Patient",))
                )


def test_retry_after_as_a_date() -> None:
    response = httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after(response, 5.0) == 0.0  # a date in the past: at once
    assert retry_after(httpx.Response(503, headers={"Retry-After": "soon"}), 5.0) == 5.0
    assert retry_after(httpx.Response(503), 5.0) == 5.0


def test_the_request_asks_for_what_the_knowledge_reads() -> None:
    knowledge = load_knowledge()
    request = knowledge_request(knowledge, BASE, {"Patient", "Condition", "Observation", "MedicationRequest"})
    assert request.types == ("Condition", "MedicationRequest", "Observation", "Patient")
    (obs,) = [f for f in request.type_filters if f.startswith("Observation?")]
    for _system, code in observation_codes(knowledge):
        assert code in obs
    assert not any(
        f.startswith(("CarePlan?", "ServiceRequest?")) for f in request.type_filters
    )  # not offered
    everything = knowledge_request(knowledge, BASE, None, group="g 1")
    assert "ServiceRequest?status=active,on-hold" in everything.type_filters
    assert everything.kickoff_url().startswith(f"{BASE}/Group/g%201/$export?_outputFormat=")


@pytest.mark.anyio
async def test_a_type_is_dropped_only_when_the_server_says_it_has_none(tmp_path: Path) -> None:
    def kickoff(request: httpx.Request) -> httpx.Response:
        types = request.url.params["_type"].split(",")
        if "Procedure" in types:
            diagnostics = 'The requested resource type "Procedure" is not available on this server'
        elif request.url.params.get("_typeFilter"):
            diagnostics = 'Cannot use the _typeFilter given for "Observation"'
        else:
            return httpx.Response(202, headers={"Content-Location": f"{BASE}/status/1"})
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "invalid", "diagnostics": diagnostics}],
        }
        return httpx.Response(400, json=outcome)

    with respx.mock(assert_all_called=False) as mock:
        kick = mock.get(url__startswith=f"{BASE}/$export").mock(side_effect=kickoff)
        mock.get(f"{BASE}/status/1").mock(
            return_value=httpx.Response(
                200, json=_manifest([{"type": "Patient", "url": f"{FILES}/p.ndjson"}])
            )
        )
        mock.get(f"{FILES}/p.ndjson").mock(return_value=httpx.Response(200, content=PATIENTS))
        mock.delete(f"{BASE}/status/1").mock(return_value=httpx.Response(202))
        request = ExportRequest(
            BASE, types=("Observation", "Patient", "Procedure"), type_filters=("Observation?code=x",)
        )
        async with httpx.AsyncClient() as http:
            result = await _exporter(http, tmp_path, Sleeps()).run(request)
    last = kick.calls.last.request.url.params
    assert last["_type"] == "Observation,Patient"  # Observation kept: the complaint was about the filter
    assert "_typeFilter" not in last
    assert any("refused Procedure" in n for n in result.notes)
    assert any("refused _typeFilter" in n for n in result.notes)


@pytest.mark.anyio
async def test_a_manifest_reported_before_it_was_complete_is_asked_for_again(tmp_path: Path) -> None:
    conditions = b'{"resourceType":"Condition","id":"c","subject":{"reference":"Patient/a"}}\n'
    early = _manifest([{"type": "Condition", "url": f"{FILES}/c.ndjson"}])
    later = _manifest([*early["output"], {"type": "Patient", "url": f"{FILES}/p.ndjson"}])
    sleeps = Sleeps()
    with respx.mock() as mock:
        _kickoff(mock)
        status = mock.get(f"{BASE}/status/1").mock(
            side_effect=[
                httpx.Response(200, json=early),
                httpx.Response(200, json=early),
                httpx.Response(200, json=later),
            ]
        )
        mock.get(f"{FILES}/c.ndjson").mock(return_value=httpx.Response(200, content=conditions))
        mock.get(f"{FILES}/p.ndjson").mock(return_value=httpx.Response(200, content=PATIENTS))
        async with httpx.AsyncClient() as http:
            result = await _exporter(http, tmp_path, sleeps).run(
                ExportRequest(BASE, types=("Condition", "Patient"))
            )
    assert status.call_count == 3  # the same job, asked again: no second export
    assert sleeps.delays == [1.0, 2.0]
    assert result.resources() == {"Condition": 1, "Patient": 2}
    assert any("later one was used" in n for n in result.notes)
