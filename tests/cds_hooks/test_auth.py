"""Trusting the EHR: the JWT attack battery against a real uvicorn with auth required.

Keys are generated here. Issuer A shares its JWKS out of band (a file); issuer B publishes it
at a URL (served by the FHIR stub) and may name it in `jku`; issuer C's JWKS endpoint is down.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.cds_hooks.conftest import example_bundle, hook_request, prefetch_of
from tests.servers import free_port, service_command, uvicorn_server

ISS_A, ISS_B, ISS_C = "https://ehr-a.test", "https://ehr-b.test", "https://ehr-down.test"
# The CDS Hooks Sandbox's issuer and key id, as its jwt-generator.js writes them; the key here is
# generated (the Sandbox's own is published in its repository: docs/sandbox.md says how to pin it).
ISS_SANDBOX = "https://sandbox.cds-hooks.org"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"


class Signer:
    def __init__(self, alg: str) -> None:
        self.alg = alg
        self.key: Any = (
            ec.generate_private_key(ec.SECP384R1())
            if alg == "ES384"
            else rsa.generate_private_key(65537, 2048)
        )
        self.kid = uuid.uuid4().hex

    def jwk(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[self.alg].to_jwk(self.key.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def token(
        self, aud: str, iss: str = ISS_A, *, header: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        now = int(time.time())
        body = {"iss": iss, "aud": aud, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()), **claims}
        body = {k: v for k, v in body.items() if v is not None}
        headers = {"kid": self.kid, "typ": "JWT", **(header or {})}
        return jwt.encode(body, self.key, algorithm=self.alg, headers=headers)


ES = Signer("ES384")
RS = Signer("RS384")
B_KEY = Signer("ES384")
STRANGER = Signer("ES384")
SANDBOX = Signer("ES384")
SANDBOX.kid = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"


@pytest.fixture(scope="module")
def secured(fhir_stub: str, jwks_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("secured")
    (folder / "a.json").write_text(json.dumps({"keys": [ES.jwk(), RS.jwk()]}))
    (folder / "sandbox.json").write_text(json.dumps({"keys": [SANDBOX.jwk()]}))
    (jwks_dir / "b.json").write_text(json.dumps({"keys": [B_KEY.jwk()]}))
    b_url = fhir_stub.removesuffix("/fhir") + "/jwks/b.json"
    issuers = {
        ISS_A: {"jwks_file": str(folder / "a.json")},
        ISS_B: {"jwks_url": b_url, "jku_allow": [b_url]},
        ISS_C: {"jwks_url": f"http://127.0.0.1:{free_port()}/jwks.json"},
        ISS_SANDBOX: {"jwks_file": str(folder / "sandbox.json")},
    }
    port = free_port()
    env = {
        "OI_CDS_AUTH_MODE": "required",
        "OI_CDS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "OI_CDS_TRUSTED_ISSUERS": json.dumps(issuers),
        "OI_CDS_DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
        "OI_CDS_FHIR_ALLOWLIST": fhir_stub,
        "OI_CDS_CORS_ORIGINS": "http://localhost:8080",
    }
    with uvicorn_server(service_command(port), port, folder / "log.txt", env) as base:
        yield base


def _get(base: str, token: str | None, path: str = "/cds-services") -> httpx.Response:
    headers = {"Origin": "http://localhost:8080"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(base + path, headers=headers)


def _rejected(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.headers["access-control-allow-origin"] == "http://localhost:8080"


def test_valid_es384_and_rs384_tokens_are_accepted(secured: str) -> None:
    assert _get(secured, ES.token(secured + "/cds-services")).status_code == 200
    assert _get(secured, RS.token(secured + "/cds-services")).status_code == 200
    url = secured + "/cds-services/oi-management"
    body = hook_request(
        "patient-view", "oi-type-iii-child", prefetch_of(example_bundle(), "oi-type-iii-child")
    )
    hook = httpx.post(url, json=body, headers={"Authorization": f"Bearer {ES.token(url)}"})
    assert hook.status_code == 200
    card = hook.json()["cards"][0]["uuid"]
    item = {"feedback": [{"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-25T10:00:00Z"}]}
    for aud in (url + "/feedback", url):  # the feedback URL, or its service's URL
        response = httpx.post(
            url + "/feedback", json=item, headers={"Authorization": f"Bearer {ES.token(aud)}"}
        )
        assert response.status_code == 200


def test_issuer_with_published_jwks_and_allowed_jku(secured: str, fhir_stub: str) -> None:
    aud = secured + "/cds-services"
    assert _get(secured, B_KEY.token(aud, ISS_B)).status_code == 200
    jku = fhir_stub.removesuffix("/fhir") + "/jwks/b.json"
    assert _get(secured, B_KEY.token(aud, ISS_B, header={"jku": jku})).status_code == 200


def test_the_sandbox_token_with_its_jku_is_trusted_through_a_pinned_key_set(secured: str) -> None:
    """Issue 19: the Sandbox always sends a jku; offline, the pinned jwks_file decides."""
    aud = secured + "/cds-services"
    token = SANDBOX.token(aud, ISS_SANDBOX, header={"jku": SANDBOX_JKU})
    assert _get(secured, token).status_code == 200
    hook = secured + "/cds-services/oi-management"
    body = hook_request(
        "patient-view", "oi-type-iii-child", prefetch_of(example_bundle(), "oi-type-iii-child")
    )
    response = httpx.post(
        hook,
        json=body,
        headers={"Authorization": f"Bearer {SANDBOX.token(hook, ISS_SANDBOX, header={'jku': SANDBOX_JKU})}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["cards"]


def test_a_pinned_key_set_without_the_kid_does_not_open_the_jku(secured: str) -> None:
    aud = secured + "/cds-services"
    stranger = Signer("ES384")
    _rejected(_get(secured, stranger.token(aud, ISS_SANDBOX, header={"jku": SANDBOX_JKU})))
    forged = Signer("ES384")
    forged.kid = SANDBOX.kid  # the right kid, another key: the signature fails
    _rejected(_get(secured, forged.token(aud, ISS_SANDBOX, header={"jku": SANDBOX_JKU})))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_with_public_key(aud: str) -> str:
    public = ES.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": ES.kid}).encode())
    body = _b64(json.dumps({"iss": ISS_A, "aud": aud, "iat": now, "exp": now + 60, "jti": "x"}).encode())
    signature = _b64(hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{signature}"


def _none_alg(aud: str) -> str:
    now = int(time.time())
    return jwt.encode(
        {"iss": ISS_A, "aud": aud, "iat": now, "exp": now + 60, "jti": "n"},
        "",
        algorithm="none",
        headers={"kid": ES.kid, "typ": "JWT"},
    )


ATTACKS: dict[str, Callable[[str], str | None]] = {
    "no token": lambda aud: None,
    "malformed": lambda aud: "not.a.jwt",
    "alg none": _none_alg,
    "HS256 with the public key as secret": _hs256_with_public_key,
    "wrong key": lambda aud: STRANGER.token(aud, header={"kid": ES.kid}),
    "unknown kid": lambda aud: ES.token(aud, header={"kid": "nope"}),
    "untrusted iss": lambda aud: ES.token(aud, "https://evil.test"),
    "wrong aud": lambda aud: ES.token("https://other.example.org/cds-services"),
    "expired": lambda aud: ES.token(aud, iat=int(time.time()) - 400, exp=int(time.time()) - 61 - 30),
    "iat in the future": lambda aud: ES.token(aud, iat=int(time.time()) + 120, exp=int(time.time()) + 300),
    "lifetime over 5 minutes": lambda aud: ES.token(aud, exp=int(time.time()) + 600),
    "no jti": lambda aud: ES.token(aud, jti=None),
    "no kid": lambda aud: jwt.encode(
        {"iss": ISS_A, "aud": aud, "iat": int(time.time()), "exp": int(time.time()) + 60, "jti": "k"},
        ES.key,
        algorithm="ES384",
        headers={"typ": "JWT"},
    ),
    "typ not JWT": lambda aud: ES.token(aud, header={"typ": "at+jwt"}),
    "jku off the allow-list": lambda aud: B_KEY.token(
        aud, ISS_B, header={"jku": "https://evil.test/jwks.json"}
    ),
    "JWKS endpoint down": lambda aud: ES.token(aud, ISS_C),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_is_rejected(attack: str, secured: str) -> None:
    _rejected(_get(secured, ATTACKS[attack](secured + "/cds-services")))


def test_leeway_on_both_sides(secured: str) -> None:
    now = int(time.time())
    aud = secured + "/cds-services"
    # expired 30 s ago and issued 30 s ahead: inside the default 60 s leeway
    assert _get(secured, ES.token(aud, iat=now - 200, exp=now - 30)).status_code == 200
    assert _get(secured, ES.token(aud, iat=now + 30, exp=now + 200)).status_code == 200


def test_replayed_jti_is_rejected(secured: str) -> None:
    token = ES.token(secured + "/cds-services")
    assert _get(secured, token).status_code == 200
    _rejected(_get(secured, token))


def test_every_protected_endpoint(secured: str) -> None:
    for path in ("/cds-services", "/admin/feedback"):
        _rejected(_get(secured, None, path))
    _rejected(
        httpx.post(
            secured + "/cds-services/oi-management/feedback",
            json={"feedback": []},
            headers={"Origin": "http://localhost:8080"},
        )
    )
    assert _get(secured, None, "/healthz").status_code == 200
    preflight = httpx.options(
        secured + "/cds-services/oi-management",
        headers={
            "Origin": "http://localhost:8080",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200  # CORS preflight needs no token


def test_nothing_is_fetched_before_the_token_is_verified(secured: str, fhir_stub: str) -> None:
    seen = len(httpx.get(fhir_stub.removesuffix("/fhir") + "/_seen").json())
    url = secured + "/cds-services/oi-management"
    body = hook_request("patient-view", "oi-type-iii-child", None, fhirServer=fhir_stub)
    response = httpx.post(
        url,
        json=body,
        headers={"Authorization": f"Bearer {STRANGER.token(url)}", "Origin": "http://localhost:8080"},
    )
    _rejected(response)
    assert len(httpx.get(fhir_stub.removesuffix("/fhir") + "/_seen").json()) == seen


def test_dev_keys_and_dev_token_work_with_a_trusting_service(tmp_path: Path) -> None:
    import subprocess
    import sys

    keys = tmp_path / "keys"
    made = subprocess.run(
        [sys.executable, "-m", "services.cli", "dev-keys", "--dir", str(keys)],
        capture_output=True,
        text=True,
        check=True,
    )
    trusted = made.stdout.split("OI_CDS_TRUSTED_ISSUERS='", 1)[1].split("'", 1)[0]
    port = free_port()
    env = {
        "OI_CDS_AUTH_MODE": "required",
        "OI_CDS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "OI_CDS_TRUSTED_ISSUERS": trusted,
        "OI_CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    with uvicorn_server(service_command(port), port, tmp_path / "log.txt", env) as base:
        token = subprocess.run(
            [
                sys.executable,
                "-m",
                "services.cli",
                "dev-token",
                "--dir",
                str(keys),
                "--aud",
                base + "/cds-services",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert _get(base, token).status_code == 200
        _rejected_plain = _get(base, token)
        assert _rejected_plain.status_code == 401  # the same token twice is a replay


@pytest.mark.anyio
async def test_redis_replay_cache() -> None:
    from services.cds_hooks.auth import RedisReplayCache

    cache = RedisReplayCache("redis://127.0.0.1:6379/0")
    try:
        await cache.client.ping()  # type: ignore[misc]  # redis-py types ping as bool | Awaitable
    except Exception:
        await cache.close()
        pytest.skip("Redis not reachable at 127.0.0.1:6379")
    key = f"test|{uuid.uuid4()}"
    assert await cache.first_use(key, 5)
    assert not await cache.first_use(key, 5)
    ttl = await cache.client.ttl(f"oi-cds:jti:{key}")
    assert 0 < ttl <= 5
    await cache.close()


def test_metrics_need_a_token_and_count_rejections(secured: str) -> None:
    _rejected(_get(secured, None, "/metrics"))
    _get(secured, ES.token(secured + "/cds-services", "https://evil.test"))
    text = _get(secured, ES.token(secured + "/metrics"), "/metrics").text
    assert 'oi_cds_jwt_rejections_total{reason="issuer not trusted"}' in text


def test_every_route_but_health_requires_the_jwt(secured: str) -> None:
    """A guard for routes added later (the FHIR face included): every operation in the
    OpenAPI document answers 401 without a token, except the health checks."""
    schema = httpx.get(secured + "/openapi.json").json()
    checked = 0
    for path, operations in schema["paths"].items():
        if path in ("/healthz", "/readyz"):
            continue
        url = secured + path.replace("{service_id}", "oi-management")
        for method in operations:
            response = httpx.request(method.upper(), url, json={} if method == "post" else None)
            assert response.status_code == 401, f"{method.upper()} {path}: {response.status_code}"
            checked += 1
    assert checked >= 5
