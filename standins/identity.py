"""Stand-in for the App Service / Functions managed identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER).

Contract (what azure-identity 1.27 / msal `_obtain_token_on_app_service` sends and parses):
  GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=R[&client_id=|mi_res_id=|object_id=]
  header X-IDENTITY-HEADER: {IDENTITY_HEADER}
  200 {"access_token", "expires_on" (epoch seconds, string), "resource", "token_type": "Bearer", "client_id"}
  errors: {"statusCode": N, "message": "..."}
Tokens are HS256 JWTs signed with --token-secret (aud=resource, oid, appid, exp), verifiable by other stand-ins
through `standins.tokens.check_bearer`.

    python -m standins.identity --port N --secret S [--identity-header H] [--ttl 3600] [--cert C --key K]

Control API (no auth): GET /_standin/counters, POST /_standin/reset, PUT /_standin/config
{"ttl_seconds": int, "fail_next": int}.
"""
from __future__ import annotations

import hmac
import sys

from standins import tokens
from standins.httpbase import JsonHandler, route, serve

TOKEN_PATH = "/msi/token"
MAX_RESOURCE = 512


class IdentityHandler(JsonHandler):
    """Managed identity token endpoint stand-in (App Service 2019-08-01 protocol)."""

    header_secret = ""
    token_secret = ""
    object_id = "00000000-0000-4000-8000-0000000000a1"
    client_id = "00000000-0000-4000-8000-0000000000c1"
    ttl_seconds = 3600
    fail_next = 0
    counters: dict[str, int] = {}

    def _dispatch(self) -> None:
        self.__dict__.pop("_body", None)  # httpbase caches the body per handler, i.e. per keep-alive connection
        self.body_bytes()
        super()._dispatch()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    def _error(self, status: int, message: str) -> None:
        self.send_json(status, {"statusCode": status, "message": message})

    def _count(self, key: str) -> None:
        with self.lock:
            type(self).counters[key] = type(self).counters.get(key, 0) + 1

    @route("GET", TOKEN_PATH)
    def token(self) -> None:
        self._count("token_requests")
        presented = self.headers.get("X-IDENTITY-HEADER") or ""
        if not presented or not hmac.compare_digest(presented.encode(), self.header_secret.encode()):
            self._count("rejected_header")
            self._error(401, "The request is missing or has an invalid X-IDENTITY-HEADER header.")
            return
        q = self.query
        if not q.get("api-version"):
            self._error(400, "The api-version query parameter is required.")
            return
        resource = q.get("resource", "")
        if not resource or len(resource) > MAX_RESOURCE:
            self._error(400, "The resource query parameter is required.")
            return
        with self.lock:
            cls = type(self)
            if cls.fail_next > 0:
                cls.fail_next -= 1
                failing = True
            else:
                failing = False
            ttl = cls.ttl_seconds
        if failing:
            self._count("injected_failures")
            self._error(500, "Injected failure of the managed identity endpoint.")
            return
        client_id = (q.get("client_id") or self.client_id)[:128]
        object_id = (q.get("object_id") or self.object_id)[:128]
        token, expires_on = tokens.mint(self.token_secret, resource, object_id=object_id, app_id=client_id,
                                        ttl_seconds=ttl)
        self._count("tokens_issued")
        self.send_json(200, {"access_token": token, "expires_on": str(expires_on), "resource": resource,
                             "token_type": "Bearer", "client_id": client_id})

    @route("GET", "/_standin/counters")
    def get_counters(self) -> None:
        with self.lock:
            self.send_json(200, dict(type(self).counters))

    @route("POST", "/_standin/reset")
    def reset(self) -> None:
        with self.lock:
            cls = type(self)
            cls.counters = {}
            cls.fail_next = 0
            cls.ttl_seconds = cls._initial_ttl
        self.send_json(200, {"ok": True})

    @route("PUT", "/_standin/config")
    def config(self) -> None:
        body = self.json_body() or {}
        with self.lock:
            cls = type(self)
            if "ttl_seconds" in body:
                cls.ttl_seconds = max(1, min(int(body["ttl_seconds"]), 86400))
            if "fail_next" in body:
                cls.fail_next = max(0, min(int(body["fail_next"]), 1000))
            self.send_json(200, {"ttl_seconds": cls.ttl_seconds, "fail_next": cls.fail_next})

    _initial_ttl = 3600


def main(argv: list[str] | None = None) -> None:
    def extra(p):
        p.add_argument("--secret", required=True, help="HS256 key for issued JWTs (other stand-ins' --token-secret)")
        p.add_argument("--identity-header", help="the IDENTITY_HEADER value clients must present (default: --secret)")
        p.add_argument("--ttl", type=int, default=3600, help="token lifetime in seconds")
        p.add_argument("--client-id", default=IdentityHandler.client_id)
        p.add_argument("--object-id", default=IdentityHandler.object_id)

    def configure(args):
        IdentityHandler.token_secret = args.secret
        IdentityHandler.header_secret = args.identity_header or args.secret
        IdentityHandler.ttl_seconds = IdentityHandler._initial_ttl = args.ttl
        IdentityHandler.client_id = args.client_id
        IdentityHandler.object_id = args.object_id

    serve(IdentityHandler, argv, configure=configure, extra_args=extra)


if __name__ == "__main__":
    main(sys.argv[1:])
