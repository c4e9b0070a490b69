"""Outbound FHIR reads and searches: allow-listed servers only, bounded in time, size and pages."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
import orjson

from services.cds_hooks import metrics
from services.cds_hooks.errors import PreconditionFailed
from services.plan_builder.types import JSON


class FhirFetchError(PreconditionFailed):
    """The FHIR server could not give the data: a 412 of the HTTP face's family if it escapes.
    The detail (no PHI, no token) is for the log and the operator; the answer is generic, so
    that a 412 never tells which ports or servers answer (``reason`` is the metric label)."""

    def __init__(self, detail: str, reason: str = "error") -> None:
        super().__init__("required FHIR data could not be obtained from the FHIR server")
        self.detail = detail
        self.reason = reason

    def __str__(self) -> str:
        return self.detail  # for the operator's log; the response says only `diagnostics`


class FhirRefused(FhirFetchError):
    """The FHIR server refused the request itself (HTTP 400 or 422): it may accept another form."""


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
# what must not survive normalization in a path: an encoded dot, slash or backslash could be
# decoded by the server into a segment that leaves the allow-listed prefix
_STILL_ENCODED = re.compile(r"%(2[eEfF]|5[cC])")


def _decode_unreserved(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else match.group(0).upper()

    return _ESCAPE.sub(one, text)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4."""
    out: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if len(out) > 1:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if path.endswith(("/.", "/..")):
        out.append("")
    return "/".join(out)


def normalize_url(url: str) -> str:
    """RFC 3986 section 6 normalization: lower-case scheme and host, unreserved escapes decoded,
    dot segments removed. Raises ValueError for what is still ambiguous after it (an encoded
    dot, slash or backslash, a backslash, a control character) or is not an http(s) URL."""
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url) or "\\" in url:
        raise ValueError("control character, space or backslash in a URL")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("not an absolute http(s) URL")
    path = _remove_dot_segments(_decode_unreserved(parts.path))
    if _STILL_ENCODED.search(path):
        raise ValueError("encoded dot, slash or backslash in a URL path")
    netloc = parts.hostname.lower() + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme.lower(), netloc, path, _decode_unreserved(parts.query), ""))


def _origin_and_path(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port, parts.path.rstrip("/")


def allowed(url: str, allowlist: list[str]) -> bool:
    """Same scheme, host and port as an allow-listed base, and under its path, once both are
    normalized (a `..` or `%2e%2e` segment cannot climb out of the allow-listed prefix)."""
    try:
        scheme, host, port, path = _origin_and_path(normalize_url(url))
    except ValueError:
        return False
    for base in allowlist:
        try:
            b_scheme, b_host, b_port, b_path = _origin_and_path(normalize_url(base))
        except ValueError:
            continue
        if (scheme, host, port) == (b_scheme, b_host, b_port) and (
            path == b_path or path.startswith(b_path + "/")
        ):
            return True
    return False


class FhirClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        allowlist: list[str],
        max_pages: int,
        max_bytes: int,
        max_entries: int = 10_000,
        slots: asyncio.Semaphore | None = None,
    ) -> None:
        self.http = http
        self.allowlist = allowlist
        self.max_pages = max_pages
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        # FHIR requests in flight from this worker, all hook calls together (OI_CDS_FHIR_MAX_IN_FLIGHT)
        self.slots = slots or asyncio.Semaphore(32)

    def with_allowed(self, extra: list[str]) -> FhirClient:
        """The same pooled client, with more allow-listed bases (the demo server's own URLs)."""
        return FhirClient(
            self.http, [*self.allowlist, *extra], self.max_pages, self.max_bytes, self.max_entries, self.slots
        )

    def usable(self, server: str | None) -> bool:
        return bool(server) and allowed(str(server), self.allowlist)

    async def get(self, server: str, path: str, token: str | None) -> JSON:
        url = urljoin(server.rstrip("/") + "/", path)
        return await self._get_url(server, url, token)

    async def _get_url(self, server: str, url: str, token: str | None) -> JSON:
        # The token goes only to the allow-listed server it was issued for, and the URL checked
        # is the URL sent: normalized here, so the HTTP client has nothing left to rewrite.
        try:
            url, base = normalize_url(url), normalize_url(server).rstrip("/")
        except ValueError as exc:
            raise FhirFetchError(
                "a FHIR URL that is not a plain http(s) URL was not fetched", "not-allowed"
            ) from exc
        if (
            not allowed(url, self.allowlist)
            or not allowed(base, self.allowlist)
            or not (url == base or url.startswith(base + "/") or url.startswith(base + "?"))
        ):
            raise FhirFetchError("a FHIR URL outside the allow-listed server was not fetched", "not-allowed")
        started = time.perf_counter()
        try:
            async with self.slots:
                body = await self._fetch(url, token)
        except FhirFetchError:
            metrics.FHIR_CALLS.labels("error").inc()
            raise
        finally:
            metrics.FHIR_LATENCY.observe(time.perf_counter() - started)
        metrics.FHIR_CALLS.labels("ok").inc()
        return body

    async def _fetch(self, url: str, token: str | None) -> JSON:
        headers = {"Accept": "application/fhir+json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with self.http.stream("GET", url, headers=headers) as response:
                if response.status_code in (400, 422):
                    raise FhirRefused(
                        f"the FHIR server answered HTTP {response.status_code}",
                        f"http-{response.status_code}",
                    )
                if response.status_code != 200:
                    raise FhirFetchError(
                        f"the FHIR server answered HTTP {response.status_code}",
                        f"http-{response.status_code // 100}xx",
                    )
                size = 0
                chunks = []
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise FhirFetchError(
                            f"the FHIR response exceeded {self.max_bytes} bytes", "too-large"
                        )
                    chunks.append(chunk)
        except httpx.TimeoutException as exc:
            raise FhirFetchError("the FHIR server timed out", "timeout") from exc
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise FhirFetchError(
                f"the FHIR server could not be reached ({type(exc).__name__})", "unreachable"
            ) from exc
        try:
            body: Any = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError as exc:
            raise FhirFetchError("the FHIR server's response is not JSON", "not-json") from exc
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise FhirFetchError("the FHIR server's response is not a FHIR resource", "not-fhir")
        return body

    async def search(
        self, server: str, path: str, token: str | None, resource_type: str, *includes: str
    ) -> list[JSON]:
        """Every page of a search (bounded), keeping resources of the expected type."""
        bundle = await self.get(server, path, token)
        resources: list[JSON] = []
        for page in range(self.max_pages):
            if bundle.get("resourceType") == "OperationOutcome":
                raise FhirFetchError(
                    f"the FHIR server returned an OperationOutcome for {resource_type}", "outcome"
                )
            if bundle.get("resourceType") != "Bundle":
                found = bundle.get("resourceType")
                raise FhirFetchError(
                    f"the FHIR server returned {found}, not a Bundle, for {resource_type}", "wrong-type"
                )
            resources.extend(entries_of(bundle, resource_type, *includes))
            if len(resources) > self.max_entries:
                raise FhirFetchError(
                    f"the {resource_type} search returned more than {self.max_entries} entries",
                    "too-many-entries",
                )
            next_url = next_link(bundle)
            if next_url is None:
                return resources
            if page + 1 == self.max_pages:
                break
            bundle = await self._get_url(server, urljoin(server.rstrip("/") + "/", next_url), token)
        raise FhirFetchError(
            f"the {resource_type} search has more than {self.max_pages} pages", "too-many-pages"
        )


def next_link(bundle: JSON) -> str | None:
    for link in bundle.get("link") or ():
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None


def entries_of(bundle: JSON, *resource_types: str) -> list[JSON]:
    out = []
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") in resource_types:
            out.append(resource)
    return out


def has_error_outcome(bundle: JSON) -> bool:
    return any(
        isinstance(issue, dict) and issue.get("severity") in ("error", "fatal")
        for outcome in entries_of(bundle, "OperationOutcome")
        for issue in outcome.get("issue") or ()
    )
