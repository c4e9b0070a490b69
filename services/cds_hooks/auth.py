"""Trusting the EHR: CDS Hooks 2.0 client JWTs (HL7/cds-hooks v2.0.1, "Trusting CDS Clients").

Checked before anything else is read or fetched: signature with the issuer's JWKS (fetched
with httpx, cached with a TTL, refreshed once on an unknown kid), ES384 or RS384 only, typ JWT,
kid present, iss trusted, aud = the exact URL called as the EHR sees it, exp in the future,
iat present and not in the future (with a leeway), a lifetime within local policy, and a jti
never seen before within its lifetime (replay cache shared by every process).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
import jwt
from sqlalchemy import Engine, delete
from sqlalchemy.dialects import postgresql, sqlite
from starlette.concurrency import run_in_threadpool

from services.cds_hooks.config import Settings, TrustedIssuer
from services.cds_hooks.db import jwt_replay
from services.cds_hooks.errors import Unauthorized

ALGORITHMS = ("ES384", "RS384")
_REFETCH_AFTER_S = 10.0  # an unknown kid refetches a JWKS at most this often


class ReplayCache(Protocol):
    async def first_use(self, key: str, ttl_s: int) -> bool: ...


class RedisReplayCache:
    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self.client = redis.from_url(url)

    async def first_use(self, key: str, ttl_s: int) -> bool:
        return bool(await self.client.set(f"oi-cds:jti:{key}", b"1", nx=True, ex=max(ttl_s, 1)))

    async def close(self) -> None:
        await self.client.aclose()


class DatabaseReplayCache:
    """A table with expiry: shared by every process using the same database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        self._insert = dialect.insert(jwt_replay).on_conflict_do_nothing()
        self._last_purge = 0.0

    def _first_use(self, key: str, ttl_s: int) -> bool:
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            if time.monotonic() - self._last_purge > 60:
                connection.execute(delete(jwt_replay).where(jwt_replay.c.expires_at < now))
                self._last_purge = time.monotonic()
            result = connection.execute(
                self._insert, {"jti_key": key, "expires_at": now + timedelta(seconds=ttl_s)}
            )
        return bool(result.rowcount)

    async def first_use(self, key: str, ttl_s: int) -> bool:
        return await run_in_threadpool(self._first_use, key, ttl_s)


class KeySets:
    """JWKS by source (URL or file), parsed once and kept for the TTL."""

    def __init__(self, http: httpx.AsyncClient, ttl_s: int) -> None:
        self.http = http
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def key(self, source: str, kid: str) -> Any:
        now = time.monotonic()
        cached = self._cache.get(source)
        if cached and now - cached[0] < self.ttl_s and kid in cached[1]:
            return cached[1][kid]
        if cached and kid not in cached[1] and now - cached[0] < _REFETCH_AFTER_S:
            raise Unauthorized("unknown signing key")
        keys = await self._load(source)
        self._cache[source] = (now, keys)
        if kid not in keys:
            raise Unauthorized("unknown signing key")
        return keys[kid]

    async def _load(self, source: str) -> dict[str, Any]:
        try:
            if source.startswith(("http://", "https://")):
                response = await self.http.get(source, headers={"Accept": "application/json"})
                response.raise_for_status()
                data = response.json()
            else:
                with open(source, encoding="utf-8") as fh:
                    data = json.load(fh)
            keyset = jwt.PyJWKSet.from_dict(data)
        except (httpx.HTTPError, OSError, ValueError, jwt.PyJWTError) as exc:
            raise Unauthorized("issuer keys unavailable") from exc
        return {k.key_id: k.key for k in keyset.keys if k.key_id}


class Verifier:
    def __init__(self, settings: Settings, keys: KeySets, replay: ReplayCache) -> None:
        self.settings = settings
        self.keys = keys
        self.replay = replay

    async def _key(self, issuer: TrustedIssuer, header: dict[str, Any]) -> Any:
        """The signing key: a pinned key set first, then an allowed jku, then the JWKS URL.

        A key set shared out of band (jwks_file) that holds the token's kid is used whatever
        jku the token names, and that jku is never fetched: the CDS Hooks Sandbox always sends
        its public jku, which an offline service cannot and need not reach.
        """
        kid = str(header["kid"])
        jku = header.get("jku")
        if issuer.jwks_file is not None:
            try:
                return await self.keys.key(str(issuer.jwks_file), kid)
            except Unauthorized:
                if jku is None or jku not in issuer.jku_allow:
                    raise
        if jku is not None:
            if jku not in issuer.jku_allow:
                raise Unauthorized("key set URL not trusted")
            return await self.keys.key(str(jku), kid)
        if issuer.jwks_url:
            return await self.keys.key(issuer.jwks_url, kid)
        raise Unauthorized("no key set for issuer")

    async def verify(self, authorization: str | None, audiences: list[str]) -> dict[str, Any]:
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("bearer token required")
        token = authorization.removeprefix("Bearer ").strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthorized("malformed token") from exc
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized("algorithm not accepted")
        if header.get("typ") != "JWT" or not header.get("kid"):
            raise Unauthorized("malformed token header")
        issuer = self.settings.trusted_issuers.get(str(unverified.get("iss")))
        if issuer is None:
            raise Unauthorized("issuer not trusted")
        key = await self._key(issuer, header)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[header["alg"]],
                audience=audiences,
                issuer=unverified["iss"],
                leeway=self.settings.jwt_leeway_s,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthorized("token not for this endpoint") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("invalid token") from exc
        jti = claims["jti"]
        if (
            not isinstance(jti, str)
            or not 0 < len(jti) <= 256
            or "\x00" in jti
            or len(str(claims["iss"])) > 255
        ):
            # bounded before the replay cache stores it: the same on SQLite, PostgreSQL and Redis
            raise Unauthorized("malformed token")
        now = time.time()
        if not isinstance(claims["iat"], int | float) or claims["iat"] > now + self.settings.jwt_leeway_s:
            raise Unauthorized("token issued in the future")
        if claims["exp"] - claims["iat"] > self.settings.jwt_max_lifetime_s:
            raise Unauthorized("token lifetime too long")
        ttl = int(claims["exp"] - now + self.settings.jwt_leeway_s) + 1
        if not await self.replay.first_use(f"{claims['iss']}|{claims['jti']}", ttl):
            raise Unauthorized("token already used")
        return claims
