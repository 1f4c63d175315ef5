"""The Python reference as a benchmark peer: a FastMCP 4.x server with the same three tools,
verifying RS256 bearer tokens with FastMCP's JWTVerifier against a local JWKS (the fake Entra of
tests/interop). Used by bench/run.sh only, never in production.

  python server.py <port> <jwks-uri> <issuer> <audience>
"""

from __future__ import annotations

import html
import secrets
import sys

from fastmcp import FastMCP
from fastmcp.server.auth.providers.jwt import JWTVerifier
from fastmcp.server.dependencies import get_access_token

port, jwks_uri, issuer, audience = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
# "stateless" (default): no sessions, JSON answers. "sessions": legacy sessions with SSE answers.
STATELESS = (sys.argv[5] if len(sys.argv) > 5 else "stateless") == "stateless"

verifier = JWTVerifier(jwks_uri=jwks_uri, issuer=issuer, audience=audience, algorithm="RS256",
                       required_scopes=["access_as_user"])
mcp = FastMCP("python-peer", auth=verifier)


def _user() -> str:
    token = get_access_token()
    claims = token.claims if token else {}
    return claims.get("name") or claims.get("preferred_username") or claims.get("sub") or "unknown"


@mcp.tool
def whoami() -> dict:
    """Return who you are."""
    token = get_access_token()
    claims = token.claims if token else {}
    return {"name": _user(), "object_id": claims.get("oid"), "tenant_id": claims.get("tid")}


@mcp.tool
def roll_dice(sides: int = 6) -> dict:
    """Roll a fair die."""
    if not 2 <= sides <= 1000:
        raise ValueError(f"sides must be a whole number from 2 to 1000, got {sides}")
    roll = secrets.randbelow(sides) + 1
    return {"user": _user(), "sides": sides, "roll": roll}


@mcp.tool
def greeting_card(message: str = "Welcome to the Acme Entra MCP server.") -> dict:
    """Make a greeting card."""
    return {"username": _user(), "message": message, "html": f"<p>{html.escape(message)}</p>"}


if __name__ == "__main__":
    # stateless + JSON: the peer's fastest configuration, and the one comparable to our modes.
    mcp.run(transport="http", host="127.0.0.1", port=port, show_banner=False, log_level="warning",
            stateless_http=STATELESS, json_response=STATELESS)
