"""Stand-in for the Azure App Configuration data plane (`https://<store>.azconfig.io`).

Follows the published REST contract that `azure.appconfiguration.AzureAppConfigurationClient` speaks:

* `GET|HEAD /kv/{key}?label=&api-version=`, `PUT /kv/{key}` (body: value, content_type, tags), `DELETE /kv/{key}`;
  a key-value is identified by key + label (no `label` parameter = the null label);
* ETags on every key-value: `If-Match` / `If-None-Match` (quoted or bare, `*`) → 412 on mismatch, 304 for a
  matching `If-None-Match` on GET; `PUT|DELETE /locks/{key}` make a key-value read-only (writes → 409);
* `GET /kv?key=&label=&tags=&$select=&after=` with the documented filters (exact values, up to 5 comma-separated,
  or one trailing `*` wildcard; `\\0` = the null label; backslash escapes) and `@nextLink` paging; `GET /labels`;
* `GET /revisions` (key-value history, newest first; see the revisions section at the end);
* `api-version` is required; `Sync-Token` headers are returned;
* authentication: Entra bearer tokens (HS256 JWTs from the identity stand-in, checked by `standins.tokens`,
  audience `https://appconfig.azure.com` / `https://azconfig.io` or any `--audience`) and the HMAC-SHA256 access-key
  scheme used with connection strings (`--hmac ID:BASE64SECRET`).

Test control API (no auth; 127.0.0.1 only), never part of the Azure contract:
`POST /_standin/seed {"items": [kv...]}`, `GET /_standin/kv`, `POST /_standin/edit {key, label?, value?, tags?,
locked?, delete?}` (a human edit through the portal: new ETag, tags kept unless given), `GET /_standin/requests`
(log of mutating calls), `POST /_standin/reset`.

Run: `python -m standins.appconfig --port N --cert server.pem --key server.key --token-secret S
[--hmac ID:BASE64SECRET] [--audience URI] [--page-size N]`, or `start_appconfig(...)` from a test.
"""
from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import re
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from standins.httpbase import JsonHandler, route, serve
from standins.tokens import check_bearer

KV_TYPE = "application/vnd.microsoft.appconfig.kv+json; charset=utf-8"
KVSET_TYPE = "application/vnd.microsoft.appconfig.kvset+json; charset=utf-8"
LABELSET_TYPE = "application/vnd.microsoft.appconfig.labelset+json; charset=utf-8"
PROBLEM_TYPE = "application/problem+json; charset=utf-8"
DEFAULT_AUDIENCES = ("https://appconfig.azure.com", "https://azconfig.io")
MAX_BODY = 64 * 1024
MAX_KV_BYTES = 10 * 1024          # key + label + value + content type + tags, as in the Free/Standard tiers
MAX_TAGS = 50
MAX_FILTER_VALUES = 5
HMAC_MAX_SKEW = dt.timedelta(minutes=15)
_API_VERSION = re.compile(r"^(1\.0|\d{4}-\d{2}-\d{2}(-preview)?)$")
_FIELDS = ("key", "label", "content_type", "value", "last_modified", "tags", "locked", "etag")


class Store:
    """All key-values of the store, guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.items: dict[tuple[str, str | None], dict[str, Any]] = {}
        self.sequence = 0
        self.log: list[dict[str, Any]] = []

    def reset(self) -> None:
        with self.lock:
            self.items.clear()
            self.log.clear()

    def bump(self) -> int:
        self.sequence += 1
        return self.sequence

    def record(self, **entry: Any) -> None:
        self.log.append(entry)
        del self.log[:-1000]


STORE = Store()
CONFIG: dict[str, Any] = {"secret": "", "audiences": DEFAULT_AUDIENCES, "hmac": {}, "page_size": 100}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _new_kv(key: str, label: str | None, value: str | None, content_type: str | None,
            tags: dict[str, str], locked: bool = False) -> dict[str, Any]:
    return {"etag": uuid.uuid4().hex, "key": key, "label": label, "content_type": content_type, "value": value,
            "last_modified": _now().isoformat().replace("+00:00", "Z"), "locked": locked, "tags": dict(tags)}


def _kv_size(kv: dict[str, Any]) -> int:
    return sum(len((kv.get(f) or "").encode()) for f in ("key", "label", "value", "content_type")) + sum(
        len(k.encode()) + len(v.encode()) for k, v in (kv.get("tags") or {}).items())


# ---------------------------------------------------------------------------------------------- filters

def _split_filter(text: str) -> list[str]:
    """Split a key/label filter on unescaped commas, keeping escapes for the matcher."""
    parts, current, i = [], "", 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current += text[i:i + 2]
            i += 2
            continue
        if ch == ",":
            parts.append(current)
            current = ""
        else:
            current += ch
        i += 1
    parts.append(current)
    return parts


def _compile_filter(text: str | None, allow_null: bool) -> Any:
    """A predicate for a key or label filter, or raise ValueError with the service's wording."""
    if text is None or text == "*":
        return lambda v: True
    values = _split_filter(text)
    if len(values) > MAX_FILTER_VALUES:
        raise ValueError(f"A maximum of {MAX_FILTER_VALUES} values can be specified in a filter")
    matchers = []
    for raw in values:
        if allow_null and raw == "\x00":
            matchers.append(lambda v: v is None)
            continue
        literal, wildcard, i = "", False, 0
        while i < len(raw):
            ch = raw[i]
            if ch == "\\" and i + 1 < len(raw):
                literal += raw[i + 1]
                i += 2
                continue
            if ch == "*":
                if i != len(raw) - 1:
                    raise ValueError("A wildcard is only allowed at the end of a filter value")
                if len(values) > 1:
                    raise ValueError("A wildcard cannot be combined with other filter values")
                wildcard = True
            elif ch in ",":
                raise ValueError("Invalid filter")
            else:
                literal += ch
            i += 1
        if wildcard:
            matchers.append(lambda v, p=literal: v is not None and v.startswith(p))
        else:
            matchers.append(lambda v, p=literal: v == p)
    return lambda v: any(m(v) for m in matchers)


def _tags_predicate(filters: list[str]) -> Any:
    wanted = []
    for f in filters:
        name, sep, value = f.partition("=")
        if not sep or not name:
            raise ValueError("Tags filters must be of the form tagName=tagValue")
        wanted.append((name, None if value == "\x00" else value))
    return lambda tags: all((tags or {}).get(n) == v for n, v in wanted)


# ---------------------------------------------------------------------------------------------- handler

class AppConfigStandin(JsonHandler):
    """Azure App Configuration data-plane stand-in."""

    def handle_one_request(self) -> None:
        # One handler instance serves every request of a keep-alive connection: JsonHandler.body_bytes caches the
        # body on the instance, so forget it between requests (else a PUT would see the previous PUT's body).
        self.__dict__.pop("_body", None)
        super().handle_one_request()

    # ------------------------------------------------------------------ helpers
    def _params(self) -> list[tuple[str, str]]:
        return [(k.lower(), v) for k, v in parse_qsl(urlsplit(self.path).query, keep_blank_values=True)]

    def _param(self, name: str) -> str | None:
        values = [v for k, v in self._params() if k == name]
        return values[-1] if values else None

    def problem(self, status: int, kind: str, title: str, detail: str = "", name: str = "",
                headers: dict[str, str] | None = None) -> None:
        body: dict[str, Any] = {"type": f"https://azconfig.io/errors/{kind}", "title": title, "status": status}
        if name:
            body["name"] = name
        if detail:
            body["detail"] = detail
        self.send_raw(status, json.dumps(body).encode(), PROBLEM_TYPE, headers)

    def _sync_headers(self) -> dict[str, str]:
        sn = STORE.sequence
        value = base64.b64encode(str(sn).encode()).decode()
        return {"Sync-Token": f"standin0={value};sn={sn}", "x-ms-request-id": str(uuid.uuid4())}

    def send_kv(self, status: int, kv: dict[str, Any], select: list[str] | None = None) -> None:
        body = {f: kv.get(f) for f in (select or _FIELDS)}
        headers = {"ETag": f'"{kv["etag"]}"', **self._sync_headers()}
        modified = dt.datetime.fromisoformat(kv["last_modified"].replace("Z", "+00:00"))
        headers["Last-Modified"] = email.utils.format_datetime(modified, usegmt=True)
        self.send_raw(status, json.dumps(body).encode(), KV_TYPE, headers)

    def authenticate(self) -> dict | None:
        """Claims (or {"hmac": id}) when the caller is authenticated; otherwise the 401 has been sent."""
        header = self.headers.get("Authorization") or ""
        if header.startswith("HMAC-SHA256"):
            who = self._check_hmac(header)
            if who is None:
                self.problem(401, "unauthorized", "Unauthorized", "HMAC-SHA256 signature is invalid or expired",
                             headers={"WWW-Authenticate": 'HMAC-SHA256, Bearer error="invalid_token"'})
            return who
        return check_bearer(self, CONFIG["secret"], CONFIG["audiences"])

    def _check_hmac(self, header: str) -> dict | None:
        fields = dict(p.partition("=")[::2] for p in header[len("HMAC-SHA256"):].strip().split("&"))
        credential, signed, signature = fields.get("Credential"), fields.get("SignedHeaders"), fields.get("Signature")
        secret = CONFIG["hmac"].get(credential or "")
        if not secret or not signed or not signature:
            return None
        names = signed.split(";")
        if "host" not in names or "x-ms-date" not in names or "x-ms-content-sha256" not in names:
            return None
        body = self.body_bytes()
        content_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()
        if self.headers.get("x-ms-content-sha256") != content_hash:
            return None
        date = self.headers.get("x-ms-date") or ""
        try:
            when = dt.datetime.strptime(date.replace(" GMT", "").strip(), "%b, %d %Y %H:%M:%S.%f")
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(date).replace(tzinfo=None)
            except (TypeError, ValueError):
                return None
        if abs(_now().replace(tzinfo=None) - when) > HMAC_MAX_SKEW:
            return None
        values = []
        for name in names:
            values.append(self.headers.get("Host", "") if name == "host" else self.headers.get(name, ""))
        string_to_sign = f"{self.command}\n{self.path}\n{';'.join(values)}"
        expected = base64.b64encode(hmac.new(secret, string_to_sign.encode(), hashlib.sha256).digest()).decode()
        return {"hmac": credential} if hmac.compare_digest(expected, signature) else None

    def preflight(self) -> dict | None:
        """Body size, api-version and authentication; returns the caller or None when answered."""
        if int(self.headers.get("Content-Length") or 0) > MAX_BODY:
            self.problem(413, "payload-too-large", "Payload too large")
            return None
        who = self.authenticate()
        if who is None:
            return None
        version = self._param("api-version")
        if not version or not _API_VERSION.match(version):
            self.problem(400, "invalid-argument", "Invalid request parameter 'api-version'", name="api-version",
                         detail="The 'api-version' parameter is required and must be a supported version")
            return None
        return who

    def _ident(self, key: str) -> tuple[str, str | None] | None:
        key = unquote(key)
        label = self._param("label")
        if label in ("\x00", ""):
            label = None
        if not key or key in (".", "..") or "%" in key or len(key) > MAX_KV_BYTES:
            self.problem(400, "invalid-argument", "Invalid key", name="key",
                         detail="Key cannot be '.', '..', empty or contain '%'")
            return None
        if label is not None and len(label) > MAX_KV_BYTES:
            self.problem(400, "invalid-argument", "Invalid label", name="label")
            return None
        return key, label

    def _select(self) -> list[str] | None:
        raw = self._param("$select")
        if not raw:
            return None
        fields = [f.strip() for f in raw.split(",") if f.strip()]
        bad = [f for f in fields if f not in _FIELDS]
        if bad:
            raise ValueError(f"Invalid $select field '{bad[0][:40]}'")
        return fields

    @staticmethod
    def _etag_of(header: str) -> list[str]:
        return [t.strip().removeprefix("W/").strip('"') for t in header.split(",") if t.strip()]

    def _preconditions(self, current: dict[str, Any] | None, reading: bool) -> int | None:
        """Status to answer (412, or 304 for reads) when If-Match / If-None-Match fail; else None."""
        if_match = self.headers.get("If-Match")
        if_none = self.headers.get("If-None-Match")
        if if_match is not None:
            tags = self._etag_of(if_match)
            if current is None or ("*" not in tags and current["etag"] not in tags):
                return 412
        if if_none is not None:
            tags = self._etag_of(if_none)
            if current is not None and ("*" in tags or current["etag"] in tags):
                return 304 if reading else 412
        return None

    # ------------------------------------------------------------------ key-values
    @route("GET", r"/kv/(?P<key>.+)")
    def get_kv(self, key: str) -> None:
        self._read_kv(key)

    @route("HEAD", r"/kv/(?P<key>.+)")
    def head_kv(self, key: str) -> None:
        self._read_kv(key)

    def _read_kv(self, key: str) -> None:
        if self.preflight() is None:
            return
        ident = self._ident(key)
        if ident is None:
            return
        try:
            select = self._select()
        except ValueError as exc:
            self.problem(400, "invalid-argument", str(exc), name="$select")
            return
        with STORE.lock:
            kv = STORE.items.get(ident)
            status = self._preconditions(kv, reading=True)
            if status == 304:
                self.send_raw(304, b"", KV_TYPE, {"ETag": f'"{kv["etag"]}"', **self._sync_headers()})
                return
            if status == 412:
                self.problem(412, "precondition-failed", "Precondition failed", name=ident[0])
                return
            if kv is None:
                self.problem(404, "not-found", "The key-value was not found", name=ident[0])
                return
            self.send_kv(200, kv, select)

    @route("PUT", r"/kv/(?P<key>.+)")
    def put_kv(self, key: str) -> None:
        who = self.preflight()
        if who is None:
            return
        ident = self._ident(key)
        if ident is None:
            return
        try:
            body = json.loads(self.body_bytes() or b"{}")
        except ValueError:
            self.problem(400, "invalid-argument", "Invalid JSON body")
            return
        if not isinstance(body, dict):
            self.problem(400, "invalid-argument", "The body must be a JSON object")
            return
        value, content_type, tags = body.get("value"), body.get("content_type"), body.get("tags") or {}
        if value is not None and not isinstance(value, str) or content_type is not None and not isinstance(
                content_type, str):
            self.problem(400, "invalid-argument", "value and content_type must be strings")
            return
        if (not isinstance(tags, dict) or len(tags) > MAX_TAGS
                or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())):
            self.problem(400, "invalid-argument", f"tags must be an object of at most {MAX_TAGS} strings")
            return
        with STORE.lock:
            current = STORE.items.get(ident)
            if self._preconditions(current, reading=False):
                STORE.record(op="PUT", key=ident[0], label=ident[1], status=412, caller=_caller(who))
                self.problem(412, "precondition-failed", "Precondition failed", name=ident[0])
                return
            if current is not None and current["locked"]:
                STORE.record(op="PUT", key=ident[0], label=ident[1], status=409, caller=_caller(who))
                self.problem(409, "key-locked", f"Modifying key '{ident[0]}' is not allowed", name=ident[0],
                             detail="The key is read-only. To allow modification unlock it first.")
                return
            kv = _new_kv(ident[0], ident[1], value, content_type, tags)
            if _kv_size(kv) > MAX_KV_BYTES:
                self.problem(413, "kv-too-large", "The key-value is too large")
                return
            STORE.items[ident] = kv
            STORE.bump()
            STORE.record(op="PUT", key=ident[0], label=ident[1], status=200, value=value, tags=dict(tags),
                         caller=_caller(who))
            self.send_kv(200, kv)

    @route("DELETE", r"/kv/(?P<key>.+)")
    def delete_kv(self, key: str) -> None:
        who = self.preflight()
        if who is None:
            return
        ident = self._ident(key)
        if ident is None:
            return
        with STORE.lock:
            current = STORE.items.get(ident)
            if self._preconditions(current, reading=False):
                self.problem(412, "precondition-failed", "Precondition failed", name=ident[0])
                return
            if current is None:
                self.send_raw(204, b"", KV_TYPE, self._sync_headers())
                return
            if current["locked"]:
                self.problem(409, "key-locked", f"Deleting key '{ident[0]}' is not allowed", name=ident[0],
                             detail="The key is read-only. To allow modification unlock it first.")
                return
            del STORE.items[ident]
            STORE.bump()
            STORE.record(op="DELETE", key=ident[0], label=ident[1], status=200, caller=_caller(who))
            self.send_kv(200, current)

    @route("PUT", r"/locks/(?P<key>.+)")
    def put_lock(self, key: str) -> None:
        self._lock(key, True)

    @route("DELETE", r"/locks/(?P<key>.+)")
    def delete_lock(self, key: str) -> None:
        self._lock(key, False)

    def _lock(self, key: str, locked: bool) -> None:
        who = self.preflight()
        if who is None:
            return
        ident = self._ident(key)
        if ident is None:
            return
        with STORE.lock:
            current = STORE.items.get(ident)
            if self._preconditions(current, reading=False):
                self.problem(412, "precondition-failed", "Precondition failed", name=ident[0])
                return
            if current is None:
                self.problem(404, "not-found", "The key-value was not found", name=ident[0])
                return
            current.update(locked=locked, etag=uuid.uuid4().hex,
                           last_modified=_now().isoformat().replace("+00:00", "Z"))
            STORE.bump()
            STORE.record(op="LOCK" if locked else "UNLOCK", key=ident[0], label=ident[1], status=200,
                         caller=_caller(who))
            self.send_kv(200, current)

    @route("GET", r"/kv")
    def list_kv(self) -> None:
        if self.preflight() is None:
            return
        if self._param("snapshot") is not None:
            self.problem(400, "invalid-argument", "Snapshots are not supported by this stand-in", name="snapshot")
            return
        try:
            key_ok = _compile_filter(self._param("key"), allow_null=False)
            label_ok = _compile_filter(self._param("label"), allow_null=True)
            tags_ok = _tags_predicate([v for k, v in self._params() if k == "tags"])
            select = self._select()
        except ValueError as exc:
            self.problem(400, "invalid-argument", str(exc))
            return
        after = self._param("after")
        start: tuple[str, str] | None = None
        if after:
            try:
                k, lbl = json.loads(base64.urlsafe_b64decode(after.encode()).decode())
                start = (k, lbl)
            except (ValueError, TypeError):
                self.problem(400, "invalid-argument", "Invalid 'After' token", name="After")
                return
        with STORE.lock:
            matches = sorted(
                (kv for (k, lbl), kv in STORE.items.items() if key_ok(k) and label_ok(lbl) and tags_ok(kv["tags"])),
                key=lambda kv: (kv["key"], kv["label"] or ""))
        if start is not None:
            matches = [kv for kv in matches if (kv["key"], kv["label"] or "") > start]
        page = matches[: CONFIG["page_size"]]
        body: dict[str, Any] = {"items": [{f: kv.get(f) for f in (select or _FIELDS)} for kv in page]}
        headers = self._sync_headers()
        if len(matches) > len(page):
            last = page[-1]
            token = base64.urlsafe_b64encode(json.dumps([last["key"], last["label"] or ""]).encode()).decode()
            params = [(k, v) for k, v in self._params() if k not in ("after", "api-version")] + [("after", token)]
            link = "/kv?" + urlencode(params, quote_via=quote)
            body["@nextLink"] = link
            headers["Link"] = f'<{link}>; rel="next"'
        self.send_raw(200, json.dumps(body).encode(), KVSET_TYPE, headers)

    @route("GET", r"/labels")
    def list_labels(self) -> None:
        if self.preflight() is None:
            return
        try:
            name_ok = _compile_filter(self._param("name"), allow_null=True)
        except ValueError as exc:
            self.problem(400, "invalid-argument", str(exc))
            return
        with STORE.lock:
            labels = sorted({lbl for (_, lbl) in STORE.items if name_ok(lbl)}, key=lambda x: (x is not None, x or ""))
        self.send_raw(200, json.dumps({"items": [{"name": lbl} for lbl in labels]}).encode(), LABELSET_TYPE,
                      self._sync_headers())

    # ------------------------------------------------------------------ test control API
    @route("POST", r"/_standin/reset")
    def control_reset(self) -> None:
        STORE.reset()
        self.send_json(200, {"ok": True})

    @route("POST", r"/_standin/seed")
    def control_seed(self) -> None:
        body = self.json_body() or {}
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            self.send_json(400, {"error": "expected {\"items\": [...]}"})
            return
        out = []
        with STORE.lock:
            for item in items[:1000]:
                kv = _new_kv(str(item["key"]), item.get("label"), item.get("value"), item.get("content_type"),
                             dict(item.get("tags") or {}), bool(item.get("locked", False)))
                STORE.items[(kv["key"], kv["label"])] = kv
                out.append(kv)
            STORE.bump()
        self.send_json(200, {"items": out})

    @route("GET", r"/_standin/kv")
    def control_dump(self) -> None:
        with STORE.lock:
            items = sorted(STORE.items.values(), key=lambda kv: (kv["key"], kv["label"] or ""))
            self.send_json(200, {"items": items, "sequence": STORE.sequence})

    @route("GET", r"/_standin/requests")
    def control_log(self) -> None:
        with STORE.lock:
            self.send_json(200, {"requests": list(STORE.log)})

    @route("POST", r"/_standin/edit")
    def control_edit(self) -> None:
        """A human edit (portal/CLI): bypasses ETags and locks like an operator would, and gets a new ETag."""
        body = self.json_body() or {}
        if not isinstance(body, dict) or not isinstance(body.get("key"), str):
            self.send_json(400, {"error": "expected {\"key\": ..., \"label\"?, \"value\"?, \"tags\"?, \"locked\"?}"})
            return
        ident = (body["key"], body.get("label"))
        with STORE.lock:
            current = STORE.items.get(ident)
            if body.get("delete"):
                STORE.items.pop(ident, None)
                STORE.bump()
                STORE.record(op="HUMAN-DELETE", key=ident[0], label=ident[1], status=200, caller="human")
                self.send_json(200, {"deleted": current is not None})
                return
            base = current or _new_kv(ident[0], ident[1], None, None, {})
            kv = _new_kv(ident[0], ident[1], body.get("value", base["value"]),
                         body.get("content_type", base["content_type"]),
                         dict(body["tags"]) if isinstance(body.get("tags"), dict) else base["tags"],
                         bool(body.get("locked", base["locked"])))
            STORE.items[ident] = kv
            STORE.bump()
            STORE.record(op="HUMAN-EDIT", key=ident[0], label=ident[1], status=200, value=kv["value"],
                         caller="human")
            self.send_json(200, kv)


def _caller(who: dict) -> str:
    if "hmac" in who:
        return f"hmac:{who['hmac']}"
    return f"oid:{who.get('oid', '?')}"


def _configure(args: Any) -> None:
    CONFIG["secret"] = args.secret
    CONFIG["audiences"] = tuple(DEFAULT_AUDIENCES) + tuple(args.audience or ())
    CONFIG["page_size"] = max(1, min(int(args.page_size), 1000))
    for entry in args.hmac or ():
        ident, _, secret = entry.partition(":")
        CONFIG["hmac"][ident] = base64.b64decode(secret)


def _extra(parser: Any) -> None:
    parser.add_argument("--token-secret", "--secret", dest="secret", required=True,
                        help="HS256 secret that bearer tokens must be signed with (shared with the identity stand-in)")
    parser.add_argument("--audience", action="append", help="another accepted token audience")
    parser.add_argument("--hmac", action="append", help="ID:BASE64SECRET of an access key (connection strings)")
    parser.add_argument("--page-size", type=int, default=100)


# ---------------------------------------------------------------------------------------------- test helper

@dataclass
class AppConfigServer:
    """A running stand-in plus its control API, for tests and the drill."""
    server: Any            # standins.harness.Server
    endpoint: str          # https://127.0.0.1:<port>
    ca_path: Path
    hmac_id: str
    hmac_secret: str       # base64

    @property
    def connection_string(self) -> str:
        return f"Endpoint={self.endpoint};Id={self.hmac_id};Secret={self.hmac_secret}"

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        import httpx
        response = httpx.request(method, self.endpoint + path, json=body, verify=str(self.ca_path), timeout=10)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self._control("POST", "/_standin/reset")

    def seed(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._control("POST", "/_standin/seed", {"items": items})["items"]

    def dump(self) -> list[dict[str, Any]]:
        return self._control("GET", "/_standin/kv")["items"]

    def human_edit(self, key: str, label: str | None = None, **changes: Any) -> dict[str, Any]:
        return self._control("POST", "/_standin/edit", {"key": key, "label": label, **changes})

    def requests(self) -> list[dict[str, Any]]:
        return self._control("GET", "/_standin/requests")["requests"]

    def stop(self) -> None:
        self.server.stop()


def start_appconfig(workdir: Path, ca: Any, token_secret: str, *, hmac_id: str = "standin-key-1",
                    audiences: tuple[str, ...] = (), page_size: int = 100) -> AppConfigServer:
    """Start the stand-in on a free port with the test CA (`standins.harness.make_test_ca`)."""
    import os
    from standins.harness import free_port, start_python_server

    port = free_port()
    hmac_secret = base64.b64encode(os.urandom(32)).decode()
    args = ["--port", str(port), "--cert", str(ca.cert_path), "--key", str(ca.key_path),
            "--token-secret", token_secret, "--hmac", f"{hmac_id}:{hmac_secret}", "--page-size", str(page_size)]
    for audience in audiences:
        args += ["--audience", audience]
    server = start_python_server("appconfig", "standins.appconfig", args, port, workdir)
    return AppConfigServer(server, f"https://127.0.0.1:{port}", Path(ca.ca_path), hmac_id, hmac_secret)


# ---------------------------------------------------------------------------------------------- revisions
# (rollback healer, issue 14) `GET /revisions?key=&label=&$select=&after=`: the history of key-values, newest first,
# in the kvset format; a DELETE leaves a revision without value. Kept by hooking `Store.record`, which every
# successful mutation calls after it changed `STORE.items`; the seed control call records no history.

REVISIONS: list[dict[str, Any]] = []
MAX_REVISIONS = 5000
_record_without_revisions = Store.record
_reset_without_revisions = Store.reset


def _record_with_revision(self: Store, **entry: Any) -> None:
    _record_without_revisions(self, **entry)
    if entry.get("status") != 200:
        return
    ident = (entry.get("key"), entry.get("label"))
    kv = self.items.get(ident)  # type: ignore[arg-type]
    if kv is None:  # deleted: the revision says when
        kv = {"etag": uuid.uuid4().hex, "key": ident[0], "label": ident[1], "content_type": None, "value": None,
              "last_modified": _now().isoformat().replace("+00:00", "Z"), "locked": False, "tags": {}}
    REVISIONS.insert(0, dict(kv, tags=dict(kv.get("tags") or {})))
    del REVISIONS[MAX_REVISIONS:]


def _reset_with_revisions(self: Store) -> None:
    _reset_without_revisions(self)
    REVISIONS.clear()


Store.record = _record_with_revision  # type: ignore[method-assign]
Store.reset = _reset_with_revisions  # type: ignore[method-assign]


def _list_revisions(self: AppConfigStandin) -> None:
    if self.preflight() is None:
        return
    try:
        key_ok = _compile_filter(self._param("key"), allow_null=False)
        label_ok = _compile_filter(self._param("label"), allow_null=True)
        select = self._select()
        start = int(self._param("after") or 0)
    except ValueError as exc:
        self.problem(400, "invalid-argument", str(exc))
        return
    with STORE.lock:
        matches = [kv for kv in REVISIONS if key_ok(kv["key"]) and label_ok(kv["label"])]
    page = matches[start:start + CONFIG["page_size"]]
    body: dict[str, Any] = {"items": [{f: kv.get(f) for f in (select or _FIELDS)} for kv in page]}
    if start + len(page) < len(matches):
        params = [(k, v) for k, v in self._params() if k not in ("after", "api-version")]
        body["@nextLink"] = "/revisions?" + urlencode(params + [("after", str(start + len(page)))], quote_via=quote)
    self.send_raw(200, json.dumps(body).encode(), KVSET_TYPE, self._sync_headers())


_list_revisions.__name__ = "list_revisions"
AppConfigStandin.routes = AppConfigStandin.routes + [(*route("GET", r"/revisions")(_list_revisions)._route,
                                                      _list_revisions)]


if __name__ == "__main__":
    serve(AppConfigStandin, configure=_configure, extra_args=_extra)
