"""A stand-in for Microsoft Entra on 127.0.0.1, for the interop run.

  fake_entra.py serve                      serve OIDC metadata and the JWKS; prints "listening <port>"
  fake_entra.py mint <base-url> <tenant> <client-id> [name] [scp] [oid]   print a signed v2 access token

Keys: tests/fixtures/key1.pem (a test-only key, kid "key-1"). Tokens live for an hour.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key

KEY_PEM = (Path(__file__).resolve().parent.parent / "fixtures" / "key1.pem").read_bytes()
KID = "key-1"


def b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwks() -> dict:
    public = load_pem_private_key(KEY_PEM, password=None).public_key().public_numbers()
    return {"keys": [{"kty": "RSA", "use": "sig", "kid": KID, "n": b64url_uint(public.n), "e": b64url_uint(public.e)}]}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        base = f"http://{self.headers['Host']}"
        suffix = "/v2.0/.well-known/openid-configuration"
        if self.path.endswith(suffix):
            tenant = self.path[1 : -len(suffix)]
            issuer_tenant = "{tenantid}" if tenant in ("organizations", "common") else tenant
            body = {"issuer": f"{base}/{issuer_tenant}/v2.0", "jwks_uri": f"{base}/common/discovery/v2.0/keys"}
        elif self.path == "/common/discovery/v2.0/keys":
            body = jwks()
        else:
            self.send_response(404)
            self.end_headers()
            return
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:  # quiet
        pass


def main() -> None:
    if sys.argv[1] == "serve":
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        print(f"listening {server.server_address[1]}", flush=True)
        server.serve_forever()
    elif sys.argv[1] == "mint":
        base, tenant, client_id = sys.argv[2:5]
        name = sys.argv[5] if len(sys.argv) > 5 else "Alice Example"
        scp = sys.argv[6] if len(sys.argv) > 6 else "access_as_user"
        oid = sys.argv[7] if len(sys.argv) > 7 else "0000aaaa-0000-0000-0000-00000000a11c"
        now = int(time.time())
        claims = {
            "aud": client_id, "iss": f"{base}/{tenant}/v2.0", "iat": now, "nbf": now, "exp": now + 3600,
            "tid": tenant, "oid": oid, "sub": f"{oid}-sub", "name": name,
            "preferred_username": "alice@contoso.example", "scp": scp, "ver": "2.0",
        }
        print(jwt.encode(claims, KEY_PEM, algorithm="RS256", headers={"kid": KID}))


if __name__ == "__main__":
    main()
