"""`oi-cds export`: FHIR Bulk Data Access ($export) into a folder `oi-cds plan --ndjson-dir` reads.

Kick-off (system, Group or Patient level) asks only for what the knowledge reads (`_type`, and
`_typeFilter` narrowed as the hook's prefetch templates are), the status is polled honouring
`Retry-After` and `X-Progress`, and the files are downloaded in parallel, resumably (a `.part`
file continued with a Range request; a finished file is checked against its recorded size and
SHA-256 and never fetched twice), with the server's `error` files kept apart and counted.
SMART Backend Services authorization (a signed client assertion, RS384 or ES384) is used when a
client key is given; the access token is cached until it expires and renewed once on a 401.

Every URL this command contacts (kick-off, status, token endpoint, each file) must lie under an
allow-listed base, as on the hook path: a manifest cannot send the token, or the command, to a
host nobody allowed.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlencode, urljoin

import httpx
import jwt

from services.bulk import RESOURCE_TYPE
from services.cds_hooks.fhir_client import allowed, normalize_url
from services.cds_hooks.prefetch import prefetch_keys
from services.plan_builder.knowledge import Knowledge
from services.plan_builder.structural import READ_TYPES, SHARED_TYPES

STATE_FILE = "export-state.json"
MANIFEST_FILE = "export-manifest.json"
ERRORS_DIR = "errors"
_JSON_LIMIT = 20 * 1024 * 1024  # a status answer or a manifest larger than this is not one
_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ALGORITHMS = {"RSA": "RS384", "EC": "ES384"}


class ExportError(Exception):
    """The export cannot go on; the message (no token, no patient data) is for the operator."""

    def __init__(self, message: str, code: str = "exception") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ExportRequest:
    server: str
    group: str | None = None
    patient_level: bool = False
    types: tuple[str, ...] = ()
    type_filters: tuple[str, ...] = ()
    since: str | None = None

    def kickoff_url(self, type_filters: bool = True) -> str:
        base = self.server.rstrip("/")
        if self.group:
            path = f"{base}/Group/{quote(self.group, safe='')}/$export"
        elif self.patient_level:
            path = f"{base}/Patient/$export"
        else:
            path = f"{base}/$export"
        params: list[tuple[str, str]] = [("_outputFormat", "application/fhir+ndjson")]
        if self.types:
            params.append(("_type", ",".join(self.types)))
        if type_filters:
            params.extend(("_typeFilter", f) for f in self.type_filters)
        if self.since:
            params.append(("_since", self.since))
        return f"{path}?{urlencode(params)}"


def knowledge_request(
    knowledge: Knowledge, server: str, available: set[str] | None = None, **kwargs: Any
) -> ExportRequest:
    """The resource types the planner reads and the same narrowing as the hook's prefetch
    templates (Observations by the facts' codes, orders and plans by status), limited to the
    types the server says it has (its CapabilityStatement) when it says."""
    wanted = sorted({"Patient", *READ_TYPES, *SHARED_TYPES})
    if available is not None:
        wanted = [t for t in wanted if t in available or t == "Patient"]
    filters = []
    for key in prefetch_keys(knowledge):
        if key.resource_type not in wanted or "?" not in key.template:
            continue
        params = [
            p for p in key.template.split("?", 1)[1].split("&") if not p.startswith(("patient=", "_include="))
        ]
        if params:
            filters.append(f"{key.resource_type}?{'&'.join(params)}")
    return ExportRequest(server, types=tuple(wanted), type_filters=tuple(filters), **kwargs)


@dataclass
class ClientKey:
    """A SMART Backend Services client: its id at the server and its private JWK."""

    client_id: str
    jwk: dict[str, Any]
    scope: str = "system/*.read"

    @classmethod
    def from_file(cls, client_id: str, path: Path, scope: str = "system/*.read") -> ClientKey:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ExportError(f"cannot read the client key {path}: {exc}", "not-found") from exc
        keys = doc.get("keys", [doc]) if isinstance(doc, dict) else []
        private = [k for k in keys if isinstance(k, dict) and "d" in k and k.get("kty") in _ALGORITHMS]
        if not private:
            raise ExportError(f"{path} holds no private RSA or EC key (a JWK or JWKS with 'd')", "invalid")
        return cls(client_id, private[0], scope)

    @property
    def alg(self) -> str:
        return str(self.jwk.get("alg") or _ALGORITHMS[self.jwk["kty"]])

    def assertion(self, token_url: str, now: float) -> str:
        key = jwt.PyJWK(self.jwk, algorithm=self.alg)
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "exp": int(now) + 300,
            "jti": uuid.uuid4().hex,
        }
        headers = {"typ": "JWT", **({"kid": self.jwk["kid"]} if "kid" in self.jwk else {})}
        return jwt.encode(claims, key, algorithm=self.alg, headers=headers)


@dataclass
class Tokens:
    """The access token, cached until shortly before it expires."""

    key: ClientKey
    token_url: str
    token: str | None = None
    expires: float = 0.0

    def invalidate(self) -> None:
        self.token = None

    async def header(self, http: httpx.AsyncClient) -> dict[str, str]:
        if self.token is None or time.time() > self.expires - 30:
            now = time.time()
            response = await http.post(
                self.token_url,
                data={
                    "grant_type": "client_credentials",
                    "scope": self.key.scope,
                    "client_assertion_type": _ASSERTION_TYPE,
                    "client_assertion": self.key.assertion(self.token_url, now),
                },
                headers={"Accept": "application/json"},
            )
            body = _json_or_none(response)
            if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
                error = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
                raise ExportError(
                    f"the token endpoint refused the client ({response.status_code}"
                    + (f": {error}" if error else "")
                    + ")",
                    "security",
                )
            self.token = str(body["access_token"])
            self.expires = now + float(body.get("expires_in") or 300)
        return {"Authorization": f"Bearer {self.token}"}


def _json_or_none(response: httpx.Response) -> Any:
    if len(response.content) > _JSON_LIMIT:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def retry_after(response: httpx.Response, default: float) -> float:
    """Seconds to wait: Retry-After as seconds or as an HTTP date, else the default."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    if value:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return default
        return max(0.0, when.timestamp() - time.time())
    return default


def _outcome_text(response: httpx.Response) -> str:
    body = _json_or_none(response)
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        texts = [
            str(i.get("diagnostics") or (i.get("details") or {}).get("text") or i.get("code"))
            for i in body.get("issue") or []
            if isinstance(i, dict)
        ]
        return "; ".join(texts)[:500]
    return ""


@dataclass
class Downloaded:
    name: str
    type: str
    url: str
    bytes: int
    sha256: str
    lines: int
    error: bool = False
    types: dict[str, int] = field(default_factory=dict)  # lines by their resourceType


@dataclass
class ExportResult:
    files: list[Downloaded]
    transaction_time: str | None
    error_issues: int
    skipped: int  # files already complete from an earlier run
    notes: list[str] = field(default_factory=list)

    def resources(self) -> dict[str, int]:
        """Resources by the type their lines say (servers have mislabelled files)."""
        counts: dict[str, int] = {}
        for f in self.files:
            if not f.error:
                for rtype, n in f.types.items():
                    counts[rtype] = counts.get(rtype, 0) + n
        return dict(sorted(counts.items()))

    def line(self) -> str:
        text = ", ".join(f"{t}: {n}" for t, n in self.resources().items()) or "no resources"
        text = f"exported {text} in {sum(not f.error for f in self.files)} files"
        if self.skipped:
            text += f" ({self.skipped} already complete)"
        if self.error_issues:
            text += f"; the server reported {self.error_issues} errors (see {ERRORS_DIR}/)"
        return text


def _sha256(path: Path) -> tuple[str, int, int]:
    digest, size, lines = hashlib.sha256(), 0, 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
    return digest.hexdigest(), size, lines


def _types(path: Path) -> dict[str, int]:
    """Lines by resourceType (the first one a line names: enough to count and to check labels)."""
    counts: dict[str, int] = {}
    with path.open("rb") as fh:
        for line in fh:
            match = RESOURCE_TYPE.search(line)
            if match:
                name = match.group(1).decode()
                counts[name] = counts.get(name, 0) + 1
    return counts


class Exporter:
    def __init__(
        self,
        http: httpx.AsyncClient,
        allowlist: list[str],
        out: Path,
        tokens: Tokens | None = None,
        parallel: int = 4,
        retries: int = 5,
        max_wait: float = 3600.0,
        progress: IO[str] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.http = http
        self.allowlist = allowlist
        self.out = out
        self.tokens = tokens
        self.parallel = parallel
        self.retries = retries
        self.max_wait = max_wait
        self.progress = progress
        self.sleep = sleep
        self.state: dict[str, Any] = {}

    # -- every request goes through here: allow-list, token, retries on 429 and 5xx ----------

    def check(self, url: str, what: str) -> str:
        try:
            url = normalize_url(url)
        except ValueError as exc:
            raise ExportError(f"the {what} URL is not a plain http(s) URL", "security") from exc
        if not allowed(url, self.allowlist):
            raise ExportError(
                f"the {what} URL {url.split('?', 1)[0]} is not under an allow-listed base "
                "(OI_CDS_FHIR_ALLOWLIST or --allow); it was not contacted",
                "security",
            )
        return url

    async def request(
        self,
        method: str,
        url: str,
        what: str,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        url = self.check(url, what)
        renewed = False
        for attempt in range(self.retries + 1):
            sent = {"Accept": "application/fhir+json", **(headers or {})}
            if auth and self.tokens is not None:
                sent |= await self.tokens.header(self.http)
            try:
                response = await self.http.request(method, url, headers=sent)
            except httpx.HTTPError as exc:
                if attempt == self.retries:
                    raise ExportError(
                        f"the {what} request failed: {type(exc).__name__}", "transient"
                    ) from exc
                await self.sleep(min(2.0**attempt, 30.0))
                continue
            if response.status_code in ok:
                return response
            if response.status_code == 401 and auth:
                if self.tokens is None:
                    raise ExportError(
                        f"the server requires authorization for the {what} "
                        "(give --client-id and --key: SMART Backend Services)",
                        "security",
                    )
                if not renewed:
                    renewed = True
                    self.tokens.invalidate()
                    continue
            if (response.status_code == 429 or response.status_code >= 500) and attempt < self.retries:
                await self.sleep(min(retry_after(response, 2.0**attempt), self.max_wait))
                continue
            detail = _outcome_text(response)
            raise ExportError(
                f"the {what} answered HTTP {response.status_code}" + (f": {detail}" if detail else ""),
                "transient" if response.status_code >= 500 or response.status_code == 429 else "processing",
            )
        raise ExportError(f"the {what} did not succeed after {self.retries + 1} attempts", "transient")

    # -- the job --------------------------------------------------------------------------

    def _save_state(self) -> None:
        tmp = self.out / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        tmp.replace(self.out / STATE_FILE)

    async def kick_off(self, request: ExportRequest) -> str:
        notes = self.state.setdefault("notes", [])
        with_filters = bool(request.type_filters) and not self.state.get("without_filters")
        dropped = self.state.setdefault("dropped_types", [])
        types = [t for t in request.types if t not in dropped]
        while True:
            asked = replace(request, types=tuple(types))
            try:
                response = await self.request(
                    "GET",
                    asked.kickoff_url(with_filters),
                    "kick-off",
                    headers={"Prefer": "respond-async"},
                    ok=(202,),
                )
                break
            except ExportError as exc:
                if exc.code != "processing":
                    raise
                # servers differ: some refuse a type they list but hold none of, or _typeFilter.
                # A type is dropped only when the server says it has no such type, never on
                # another complaint that happens to name it (its data would go missing).
                named = [
                    t
                    for t in types
                    if t != "Patient" and re.search(rf'"?{t}"? is not (available|supported)', str(exc))
                ]
                if named:
                    notes.append(f"the server refused {', '.join(named)} ({exc}); exported without")
                    types = [t for t in types if t not in named]
                    dropped.extend(named)
                elif with_filters:
                    notes.append(f"the server refused _typeFilter ({exc}); exported without it")
                    with_filters = False
                    self.state["without_filters"] = True
                else:
                    raise
        location = response.headers.get("Content-Location")
        if not location:
            raise ExportError("the kick-off answered 202 without a Content-Location", "processing")
        return self.check(urljoin(request.server, location), "status")

    async def poll(self, status_url: str) -> dict[str, Any]:
        from tqdm import tqdm

        bar = tqdm(total=None, desc="export", file=self.progress, disable=self.progress is None)
        waited = 0.0
        try:
            while True:
                response = await self.request("GET", status_url, "status", ok=(200, 202))
                if response.status_code == 200:
                    manifest = _json_or_none(response)
                    if not isinstance(manifest, dict) or not isinstance(manifest.get("output"), list):
                        raise ExportError("the completed export's manifest is not a manifest", "processing")
                    return manifest
                progress = response.headers.get("X-Progress")
                if progress:
                    bar.set_postfix_str(progress[:100])
                delay = min(max(retry_after(response, 1.0), 0.1), 60.0)
                waited += delay
                if waited > self.max_wait:
                    raise ExportError(
                        f"the export was not complete after {int(self.max_wait)} s (run again to resume)",
                        "timeout",
                    )
                await self.sleep(delay)
        finally:
            bar.close()

    async def download(self, entry: dict[str, Any], name: str, auth: bool, error: bool) -> Downloaded:
        url = self.check(str(entry.get("url")), "file")
        target = (self.out / ERRORS_DIR / name) if error else self.out / name
        done = self.state.setdefault("files", {}).get(name)
        if done and target.exists():
            sha, size, lines = _sha256(target)
            if (sha, size) == (done["sha256"], done["bytes"]):
                return Downloaded(**{**done, "name": name})
        part = target.with_suffix(target.suffix + ".part")
        offset = part.stat().st_size if part.exists() else 0
        for attempt in range(self.retries + 1):
            headers = {"Accept": "application/fhir+ndjson"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            if auth and self.tokens is not None:
                headers |= await self.tokens.header(self.http)
            try:
                async with self.http.stream("GET", url, headers=headers) as response:
                    if response.status_code == 401 and auth and self.tokens is not None and attempt == 0:
                        self.tokens.invalidate()
                        continue
                    if response.status_code == 429 or response.status_code >= 500:
                        if attempt == self.retries:
                            raise ExportError(f"{name}: the server answered HTTP {response.status_code}")
                        await self.sleep(min(retry_after(response, 2.0**attempt), 60.0))
                        continue
                    if response.status_code not in (200, 206):
                        raise ExportError(
                            f"{name}: the file server answered HTTP {response.status_code}", "processing"
                        )
                    if response.status_code == 200:
                        offset = 0  # no range support: start again
                    expected = response.headers.get("Content-Length")
                    received = 0
                    with part.open("ab" if offset else "wb") as fh:
                        async for chunk in response.aiter_bytes():
                            fh.write(chunk)
                            received += len(chunk)
                    if expected is not None and expected.isdigit() and received != int(expected):
                        raise httpx.ReadError(f"{received} of {expected} bytes")
                break
            except httpx.HTTPError as exc:
                offset = part.stat().st_size if part.exists() else 0
                if attempt == self.retries:
                    raise ExportError(
                        f"{name}: the download failed ({type(exc).__name__})", "transient"
                    ) from exc
                await self.sleep(min(2.0**attempt, 30.0))
        sha, size, lines = _sha256(part)
        if size and part.read_bytes()[-1:] != b"\n":
            lines += 1
        count = entry.get("count")
        if isinstance(count, int) and count != lines:
            raise ExportError(
                f"{name}: the manifest says {count} resources, the file has {lines}", "processing"
            )
        part.replace(target)
        record = Downloaded(name, str(entry.get("type")), url, size, sha, lines, error, _types(target))
        self.state["files"][name] = {k: v for k, v in record.__dict__.items() if k != "name"}
        self._save_state()
        return record

    async def run(self, request: ExportRequest) -> ExportResult:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / ERRORS_DIR).mkdir(exist_ok=True)
        path = self.out / STATE_FILE
        if path.exists():
            self.state = json.loads(path.read_text())
        if self.state.get("request") != request.kickoff_url():
            self.state = {"request": request.kickoff_url()}  # another export: start afresh
        resumed = "manifest" in self.state or "status" in self.state
        while True:
            await self._manifest(request)
            before = set(self.state.get("files", {}))
            filtered = self._filtered(request)
            try:
                files = await self._download_all(self.state["manifest"])
            except ExportError as exc:
                if not filtered or exc.code != "processing":
                    raise
                reason = str(exc)
            else:
                if not self._patients_missing(request, files):
                    break
                if await self._settled_manifest(request):
                    continue  # the same job's later manifest has the Patients: download that
                reason = "it held no Patient"
            # Seen on the SMART reference server: a filtered export whose files are empty or hold
            # no Patient, and now and then an export right after it whose manifest stops early
            # (its types come in order, Patient last). Such an export cannot be planned: ask
            # again, unfiltered, a few times (old jobs are deleted at the end: a DELETE now could
            # disturb the server's next job).
            retries = self.state["reexports"] = self.state.get("reexports", 0) + 1
            if retries > 3:
                raise ExportError(
                    f"the export is not usable after {retries} attempts ({reason})", "processing"
                )
            self.state.setdefault("notes", []).append(
                f"the {'filtered ' if filtered else ''}export was not usable ({reason}); "
                "exported again without _typeFilter"
            )
            self.state["without_filters"] = True
            self.state.setdefault("stale", []).append(self.state.pop("status"))
            del self.state["manifest"]
            for name, done in self.state.get("files", {}).items():
                (self.out / (ERRORS_DIR if done.get("error") else "") / name).unlink(missing_ok=True)
            for part in self.out.rglob("*.part"):
                part.unlink()
            self.state["files"] = {}
        manifest: dict[str, Any] = self.state["manifest"]
        for f in files:
            others = {t: n for t, n in f.types.items() if t != f.type}
            if others and not f.error:
                found = ", ".join(f"{t} ({n})" for t, n in sorted(others.items()))
                self.state.setdefault("notes", []).append(
                    f"{f.name}: the manifest says {f.type}, the file also holds {found} (read by their type)"
                )
        issues = sum(f.lines for f in files if f.error)
        await self._delete_job()
        (self.out / MANIFEST_FILE).write_text(
            json.dumps(
                {
                    "transactionTime": manifest.get("transactionTime"),
                    "request": manifest.get("request"),
                    "files": [{**f.__dict__} for f in files],
                },
                indent=2,
            )
        )
        self._save_state()
        skipped = sum(1 for f in files if f.name in before) if resumed else 0
        notes = list(dict.fromkeys(self.state.get("notes", [])))
        return ExportResult(files, manifest.get("transactionTime"), issues, skipped, notes)

    async def _manifest(self, request: ExportRequest) -> None:
        """The job's manifest: remembered, or polled from a remembered job, or a new job's."""
        if "manifest" in self.state:
            return
        if "status" in self.state:
            try:
                self.state["manifest"] = await self.poll(self.state["status"])
            except ExportError as exc:
                if "HTTP 404" not in str(exc) and "HTTP 410" not in str(exc):
                    raise
                del self.state["status"]  # expired on the server: ask again
        if "manifest" not in self.state:
            self.state["status"] = await self.kick_off(request)
            self._save_state()
            self.state["manifest"] = await self.poll(self.state["status"])
        self._save_state()

    async def _settled_manifest(self, request: ExportRequest) -> bool:
        """Seen on the SMART reference server under load: a job reported complete before its
        last entries were written. Ask the same job again a few times, a little later each
        time; True when its manifest has grown (the caller downloads and checks it again)."""
        first = self.state["manifest"]
        for delay in (1.0, 2.0, 4.0):
            await self.sleep(delay)
            try:
                manifest = await self.poll(self.state["status"])
            except ExportError:
                return False
            if len(manifest.get("output") or []) > len(first.get("output") or []):
                self.state["manifest"] = manifest
                self.state.setdefault("notes", []).append(
                    "the server's first manifest was not complete; its later one was used"
                )
                self._save_state()
                return True
        return False

    def _filtered(self, request: ExportRequest) -> bool:
        return bool(request.type_filters) and not self.state.get("without_filters")

    @staticmethod
    def _patients_missing(request: ExportRequest, files: list[Downloaded]) -> bool:
        return (
            "Patient" in request.types
            and not any(f.startswith("Patient?") for f in request.type_filters)
            and not any(f.types.get("Patient") for f in files if not f.error)
        )

    async def _delete_job(self) -> None:
        """Tell the server it may free the job's files; a failure here loses nothing."""
        for url in [
            *self.state.pop("stale", []),
            *([self.state["status"]] if "status" in self.state else []),
        ]:
            if url in self.state.setdefault("deleted", []):
                continue
            try:
                await self.request("DELETE", url, "status", ok=(200, 202, 204))
                self.state["deleted"].append(url)
            except ExportError:
                pass

    async def _download_all(self, manifest: dict[str, Any]) -> list[Downloaded]:
        from tqdm import tqdm

        auth = bool(manifest.get("requiresAccessToken"))
        jobs = []
        counters: dict[str, int] = {}
        for error, entries in ((False, manifest.get("output") or []), (True, manifest.get("error") or [])):
            for entry in entries:
                if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
                    raise ExportError("the manifest has an output entry without a url", "processing")
                rtype = str(entry.get("type") or "output")
                counters[rtype] = counters.get(rtype, 0) + 1
                jobs.append((entry, f"{rtype}.{counters[rtype]}.ndjson", error))
        slots = asyncio.Semaphore(self.parallel)
        bar = tqdm(
            total=len(jobs), unit="file", desc="download", file=self.progress, disable=self.progress is None
        )

        async def one(entry: dict[str, Any], name: str, error: bool) -> Downloaded:
            async with slots:
                record = await self.download(entry, name, auth, error)
                bar.update(1)
                return record

        try:
            return list(await asyncio.gather(*(one(*job) for job in jobs)))
        finally:
            bar.close()


async def server_types(exporter: Exporter, server: str) -> set[str] | None:
    """The resource types the server's CapabilityStatement lists, or None if it does not say."""
    try:
        response = await exporter.request("GET", server.rstrip("/") + "/metadata", "metadata", auth=False)
    except ExportError:
        return None
    body = _json_or_none(response)
    if not isinstance(body, dict):
        return None
    types = {
        r.get("type")
        for rest in body.get("rest") or []
        if isinstance(rest, dict)
        for r in rest.get("resource") or []
        if isinstance(r, dict)
    }
    return {t for t in types if isinstance(t, str)} or None


async def token_endpoint(exporter: Exporter, server: str) -> str:
    """From the server's SMART configuration (.well-known), checked against the allow-list."""
    response = await exporter.request(
        "GET", server.rstrip("/") + "/.well-known/smart-configuration", "SMART configuration", auth=False
    )
    body = _json_or_none(response)
    if not isinstance(body, dict) or not isinstance(body.get("token_endpoint"), str):
        raise ExportError("the server's SMART configuration has no token_endpoint", "processing")
    return exporter.check(body["token_endpoint"], "token endpoint")
