"""Access to the live twin's HTTP API: a bearer token, as FastAPI dependencies.

The token is given at start (``run_sim.py live --token T``, or the environment
variable ``TWIN_TOKEN``); without one, :func:`resolve_token` makes a random one
(which the CLI prints and writes to ``OUT/api_token``), so a twin is never open
to whoever reaches its port, loopback included: any web page open in an
operator's browser can post to 127.0.0.1.

Writing endpoints depend on :func:`require_token` (``Authorization: Bearer T``
only: a cross-site form cannot set that header). Reading endpoints depend on
:func:`require_read`, which asks for the token only when the server was started
with ``protect_reads`` (``--protect-reads``); reads may also carry it as
``?token=T`` in the URL, as a browser's EventSource cannot set headers. Use them
on a new endpoint as ``@app.get("/x", dependencies=[Depends(require_read)])``.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass

from fastapi import HTTPException, Request

TOKEN_ENV = "TWIN_TOKEN"
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class Access:
    """What the server asks of a request (kept in ``app.state.access``)."""
    token: str
    protect_reads: bool = False


def resolve_token(given: str | None) -> tuple[str, bool]:
    """(token, generated): ``given``, else ``$TWIN_TOKEN``, else a new random one (generated=True).

    Raises ValueError (one line) for a token too short to be a secret.
    """
    token = given if given is not None else os.environ.get(TOKEN_ENV)
    if token is None or token == "":
        return secrets.token_urlsafe(24), True
    if len(token) < MIN_TOKEN_CHARS or not token.isprintable() or any(c.isspace() for c in token):
        raise ValueError(f"the API token (--token or ${TOKEN_ENV}) must be at least {MIN_TOKEN_CHARS} printable "
                         "characters without spaces")
    return token, False


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` serves this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _check(given: str | None, token: str) -> None:
    if given is None or not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(status_code=401, detail="missing or wrong API token (Authorization: Bearer TOKEN)",
                            headers={"WWW-Authenticate": "Bearer"})


def require_token(request: Request) -> None:
    """FastAPI dependency of writing endpoints: the bearer token in the Authorization header (else 401)."""
    _check(_bearer(request), request.app.state.access.token)


def require_read(request: Request) -> None:
    """FastAPI dependency of reading endpoints: the token (header or ``?token=``) if reads are protected."""
    access: Access = request.app.state.access
    if access.protect_reads:
        _check(_bearer(request) or request.query_params.get("token"), access.token)
