"""Cost of trust: hook throughput with JWT checks on (ES384, RS384) against off, same run.

    python -m benchmarks.trust [--duration 10]

Every request carries a fresh token (the replay cache rejects reuse), pre-minted before the
run and fed to wrk one per request; 1 uvicorn worker, concurrency 10, the load benchmark's
patient-view body. The JWKS is a file (shared out of band), read once at the first request.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from benchmarks.load import request_body
from tests.servers import bench_command, free_port, uvicorn_server

ISSUER = "https://bench-ehr.test"
RATE_CEILING = 4000  # tokens minted per second of run: more than the service can take


def _signer(alg: str) -> tuple[Any, dict[str, Any]]:
    key = ec.generate_private_key(ec.SECP384R1()) if alg == "ES384" else rsa.generate_private_key(65537, 2048)
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
    return key, {**jwk, "kid": alg, "alg": alg, "use": "sig"}


def _wrk(url: str, body: Path, tokens: Path | None, duration: int, folder: Path) -> float:
    script = folder / "trust.lua"
    lines = [
        f'local f = io.open("{body}", "rb"); local payload = f:read("*a"); f:close()',
        "local tokens = {}",
    ]
    if tokens:
        lines.append(f'for line in io.lines("{tokens}") do tokens[#tokens + 1] = line end')
    lines += [
        "local i = 0",
        "request = function()",
        '  local headers = {["Content-Type"] = "application/json"}',
        '  if #tokens > 0 then i = i + 1; headers["Authorization"] = "Bearer " .. tokens[i] end',
        '  return wrk.format("POST", nil, headers, payload)',
        "end",
    ]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        ["wrk", "-t1", "-c10", f"-d{duration}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(out)
    return float(out.split("Requests/sec:")[1].split()[0])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument(
        "--redis", help="replay cache in Redis (e.g. redis://127.0.0.1:6379/0) instead of the database"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.stderr.write("wrk is not installed (apt-get install wrk)\n")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        body = folder / "body.json"
        body.write_text(json.dumps(request_body()))
        keys = {alg: _signer(alg) for alg in ("ES384", "RS384")}
        (folder / "jwks.json").write_text(json.dumps({"keys": [jwk for _, jwk in keys.values()]}))
        results = {}
        for mode in ("off", "ES384", "RS384"):
            port = free_port()
            url = f"http://127.0.0.1:{port}/cds-services/oi-management"
            env = {
                "OI_CDS_AUTH_MODE": "off" if mode == "off" else "required",
                "OI_CDS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                "OI_CDS_TRUSTED_ISSUERS": json.dumps({ISSUER: {"jwks_file": str(folder / "jwks.json")}}),
                "OI_CDS_DATABASE_URL": f"sqlite:///{folder / f'{mode}.sqlite3'}",
                **({"OI_CDS_REDIS_URL": args.redis} if args.redis else {}),
            }
            tokens = None
            if mode != "off":
                key, _ = keys[mode]
                now = int(time.time())
                tokens = folder / f"{mode}.tokens"
                with tokens.open("w") as fh:
                    for _ in range(args.duration * RATE_CEILING):
                        claims = {
                            "iss": ISSUER,
                            "aud": url,
                            "iat": now,
                            "exp": now + 290,
                            "jti": uuid.uuid4().hex,
                        }
                        fh.write(
                            jwt.encode(claims, key, algorithm=mode, headers={"kid": mode, "typ": "JWT"})
                            + "\n"
                        )
            command = bench_command(port)
            with uvicorn_server(command, port, folder / f"{mode}.log", env):
                results[mode] = _wrk(url, body, tokens, args.duration, folder)
    base = results["off"]
    print("| auth | req/s | ratio to auth off |\n|---|---|---|")
    for mode, rps in results.items():
        print(f"| {mode} | {rps:.0f} | {rps / base:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
