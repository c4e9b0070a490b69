"""SMART on FHIR scopes of a CDS Hooks fhirAuthorization: which reads and searches they allow.

Both grammars are read: v1 ``patient/Observation.read`` (``.read``, ``.*``) and v2
``patient/Observation.rs`` (``r`` read, ``s`` search), with ``*`` for any resource type, and
``patient/``, ``user/`` or ``system/`` in front. A query the token's scope does not allow is
not sent: the server would refuse it, and a token must not be used beyond what it grants.
"""

from __future__ import annotations

import re

_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|[cruds]+)(\?.*)?$")


def granted(scope: str | None) -> dict[str, set[str]] | None:
    """Resource type (or ``*``) -> the operations granted (``r``, ``s``); None: no scope given."""
    if scope is None:
        return None
    out: dict[str, set[str]] = {}
    for item in scope.split():
        match = _SCOPE.match(item)
        if match is None:
            continue  # openid, launch, fhirUser, offline_access...: not about data access
        _, rtype, access, _ = match.groups()
        if access in ("read", "*"):
            ops = {"r", "s"}
        elif access == "write":
            ops = set()
        else:  # v2: c r u d s
            ops = set(access) & {"r", "s"}
        out.setdefault(rtype, set()).update(ops)
    return out


def allows(grants: dict[str, set[str]] | None, resource_type: str, search: bool) -> bool:
    if grants is None:
        return True
    needed = "s" if search else "r"
    return needed in grants.get(resource_type, set()) | grants.get("*", set())
