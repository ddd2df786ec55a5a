"""A minimal OpenID Connect provider on loopback, for driving Streamlit's `st.login` end to end without network.

It speaks the authorization-code flow as a real provider does: discovery document, /authorize redirecting
back with a code, /token answering with an RS256-signed ID token that carries the nonce it was given, and
the public key at /jwks. It asks nothing: whoever is in `identity` logs in. It checks the client's secret
and the code. Not a substitute for a real provider (no consent, no refresh, one key), but every step
Streamlit and Authlib take is real.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

CLIENT_ID, CLIENT_SECRET = "cbir-test-client", "cbir-test-secret"


@dataclass
class FakeIdp:
    url: str
    identity: dict[str, Any] = field(default_factory=dict)  # claims of whoever logs in next
    issued_at: float | None = None  # the ID token's iat (default: now)
    logins: int = 0
    _codes: dict[str, str] = field(default_factory=dict)  # code -> nonce

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"


def _handler(idp: FakeIdp, key: Any) -> type[BaseHTTPRequestHandler]:
    from joserfc import jwt

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _json(self, body: dict[str, Any], status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/.well-known/openid-configuration":
                self._json(
                    {
                        "issuer": idp.url,
                        "authorization_endpoint": f"{idp.url}/authorize",
                        "token_endpoint": f"{idp.url}/token",
                        "jwks_uri": f"{idp.url}/jwks",
                        "response_types_supported": ["code"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                    }
                )
            elif parts.path == "/jwks":
                self._json({"keys": [key.as_dict(private=False)]})
            elif parts.path == "/authorize" and query.get("client_id") == CLIENT_ID:
                code = secrets.token_urlsafe(16)
                idp._codes[code] = query.get("nonce", "")
                back = urlencode({"code": code, "state": query.get("state", "")})
                self.send_response(302)
                self.send_header("Location", f"{query['redirect_uri']}?{back}")
                self.end_headers()
            else:
                self._json({"error": "not_found"}, 404)

        def do_POST(self) -> None:
            body = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
            form = {k: v[0] for k, v in body.items()}
            client = form.get("client_id"), form.get("client_secret")
            if self.headers.get("Authorization", "").startswith("Basic "):
                client = tuple(base64.b64decode(self.headers["Authorization"][6:]).decode().split(":", 1))
            nonce = idp._codes.pop(form.get("code", ""), None)
            if self.path != "/token" or client != (CLIENT_ID, CLIENT_SECRET) or nonce is None:
                self._json({"error": "invalid_grant"}, 400)
                return
            now = int(time.time())
            claims = {"iss": idp.url, "aud": CLIENT_ID, "sub": idp.identity.get("email", "someone"), "nonce": nonce}
            claims |= {"iat": int(idp.issued_at or now), "exp": now + 3600} | idp.identity
            token = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
            idp.logins += 1
            self._json({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "id_token": token})

    return Handler


@contextlib.contextmanager
def fake_idp(port: int) -> Iterator[FakeIdp]:
    """The provider on 127.0.0.1:port until the block ends."""
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048, parameters={"kid": "test-key"})
    idp = FakeIdp(url=f"http://127.0.0.1:{port}")
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(idp, key))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield idp
    finally:
        server.shutdown()
        server.server_close()
