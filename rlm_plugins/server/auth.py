"""Bearer-token authentication: a request must send one of the configured keys (compared in constant time)."""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from rlm_plugins.server.errors import APIError


def check_key(request: Request, keys: list[str]) -> str:
    """Raise a 401 `APIError` unless `Authorization: Bearer KEY` carries one of `keys` (no keys: open).

    Returns who is calling: a digest of the key ("" when the server is open), so a paused run resumes only for
    the key that started it.
    """
    if not keys:
        return ""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    given = token.strip().encode() if scheme.lower() == "bearer" else b""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    if not matched:
        msg = "missing or wrong API key: send 'Authorization: Bearer KEY' with a key this server was started with"
        raise APIError(401, msg, code="invalid_api_key")
    return hashlib.sha256(given).hexdigest()[:32]
