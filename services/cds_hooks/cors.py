"""CORS on the responses the pure-ASGI layers write themselves (hook calls, refusals)."""

from __future__ import annotations

from starlette.types import Scope

Headers = list[tuple[bytes, bytes]]


class Cors:
    """The CORS headers of a simple (not preflight) response, as Starlette's CORSMiddleware adds
    them: the origin allowed (``*`` for any), and ``Vary: Origin`` always."""

    def __init__(self, origins: list[str], any_origin: bool) -> None:
        self.any_origin = any_origin or "*" in origins
        self.origins = frozenset(o.encode() for o in origins)

    def headers(self, scope: Scope) -> Headers:
        origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
        if origin is not None and (self.any_origin or origin in self.origins):
            allowed = b"*" if self.any_origin else origin
            return [(b"access-control-allow-origin", allowed), (b"vary", b"Origin")]
        return [(b"vary", b"Origin")]
