"""A small local stand-in for the Azure Functions host, for the drill and the benchmarks.

Azure Functions Core Tools cannot be installed here, so this process loads `function_app.app`, reads what it
registers (`get_functions()`), and drives the same user functions the real host would:

* HTTP triggers are served on 127.0.0.1 under `/api/<route>`, with `{param}` route templates, method checks and
  key checks (`x-functions-key` header or `code` query) for non-anonymous auth levels: the host key (`--key`) opens
  every function, a function key (`--function-key <function>=<key>`) only its own function, as in Azure; the
  Event Grid webhook takes the host key or the `eventgrid_extension` system key;
* queue triggers are polled from the storage account in `AzureWebJobsStorage` (Azurite), base64 messages as in
  host.json, with host.json's batchSize, newBatchThreshold, visibilityTimeout and maxDequeueCount, and
  poison queues;
* a function whose app setting `AzureWebJobs.<name>.Disabled` is true is not loaded (as the host ignores its
  trigger): this is how one code base runs as separate webhook and worker apps;
* timer triggers can be fired on demand with `POST /admin/functions/<name>` (as the real host's admin API);
* Event Grid triggers are invoked as the real host's Event Grid extension does, through
  `POST /runtime/webhooks/eventgrid?functionName=<name>&code=<key>`: header `aeg-event-type: SubscriptionValidation`
  answers 200 `{"validationResponse": <code>}`; `Notification` decodes each array element into the event object the
  Python worker builds (`func.EventGridEvent`, or `func.CloudEvent` for CloudEvents 1.0) and calls the function once
  per event, answering 202 when all succeeded and 500 otherwise (so Event Grid retries); `Unsubscribe` → 202;
  CloudEvents' `OPTIONS` webhook handshake (WebHook-Request-Origin) → 200 with WebHook-Allowed-Origin.

Run: `python -m standins.funchost --port N --key KEY` with the app settings in the environment.
"""
from __future__ import annotations

import argparse
import base64
import json
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import azure.functions as func
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

REPO = Path(__file__).resolve().parent.parent


def _host_json() -> dict[str, Any]:
    return json.loads((REPO / "host.json").read_text())


def _seconds(span: str) -> float:
    h, m, s = span.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


class HttpFunction:
    def __init__(self, name: str, fn, binding: dict[str, Any]):
        self.name, self.fn = name, fn
        self.methods = {m.upper() for m in binding.get("methods") or ["GET", "POST"]}
        self.auth = (binding.get("authLevel") or "FUNCTION").upper()
        route = binding.get("route") or name
        self.route = route
        self.pattern = re.compile("^" + re.sub(r"\{(\w+)(?::[^}]*)?\}", r"(?P<\1>[^/]+)", route) + "$", re.I)


EVENTGRID_FUNCTIONS: dict[str, Any] = {}


def is_disabled(name: str) -> bool:
    """The host's per-function switch: app setting `AzureWebJobs.<name>.Disabled` = true (or 1)."""
    import os
    return os.environ.get(f"AzureWebJobs.{name}.Disabled", "").strip().lower() in ("true", "1")


def load_functions():
    import function_app
    http, queues, timers = [], [], []
    for f in function_app.app.get_functions():
        if is_disabled(f.get_function_name()):
            continue  # as the host does: its trigger is never listened to (an HTTP route answers 404)
        bindings = json.loads(f.get_function_json())["bindings"]
        trigger = next(b for b in bindings if b["type"].endswith("Trigger"))
        fn = f.get_user_function()
        if trigger["type"] == "httpTrigger":
            http.append(HttpFunction(f.get_function_name(), fn, trigger))
        elif trigger["type"] == "queueTrigger":
            queues.append((f.get_function_name(), fn, trigger))
        elif trigger["type"] == "timerTrigger":
            timers.append((f.get_function_name(), fn, trigger))
        elif trigger["type"] == "eventGridTrigger":
            EVENTGRID_FUNCTIONS[f.get_function_name()] = fn
    return http, queues, timers


def load_eventgrid_functions() -> dict[str, Any]:
    """The Event Grid trigger functions `load_functions` found (azure-functions 1.26 lets an app's
    `get_functions()` run once per process, as the real worker does)."""
    return dict(EVENTGRID_FUNCTIONS)


def decode_eventgrid(item: Any):
    """One delivered event as the Python worker hands it to the function (azure.functions' own converter)."""
    from azure.functions.eventgrid import EventGridEventInConverter
    from azure.functions.meta import Datum
    return EventGridEventInConverter.decode(Datum(type="json", value=json.dumps(item)), trigger_metadata={})


def eventgrid_webhook(functions: dict[str, Any], method: str, params: dict[str, str], headers: Any,
                      body: bytes) -> tuple[int, bytes, dict[str, str]]:
    """The Event Grid extension's webhook: (status, body, headers)."""
    fn = functions.get(params.get("functionName", ""))
    if fn is None:
        return 404, b'{"error":"no Event Grid trigger function with that functionName"}', {}
    if method == "OPTIONS":
        origin = headers.get("WebHook-Request-Origin")
        if not origin:
            return 400, b'{"error":"missing WebHook-Request-Origin"}', {}
        return 200, b"", {"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*"}
    if method != "POST":
        return 405, b"", {}
    try:
        events = json.loads(body or b"null")
    except ValueError:
        return 400, b'{"error":"body is not JSON"}', {}
    events = events if isinstance(events, list) else [events]
    kind = headers.get("aeg-event-type") or ("Notification" if events and isinstance(events[0], dict)
                                             and "specversion" in events[0] else "")
    if kind == "SubscriptionValidation":
        first = events[0] if events and isinstance(events[0], dict) else {}
        code = (first.get("data") or {}).get("validationCode") if isinstance(first.get("data"), dict) else None
        if not code:
            return 400, b'{"error":"no validationCode"}', {}
        return 200, json.dumps({"validationResponse": code}).encode(), {}
    if kind == "Unsubscribe":
        return 202, b"", {}
    if kind != "Notification":
        return 400, b'{"error":"unknown aeg-event-type"}', {}
    failed = 0
    for item in events:
        try:
            fn(decode_eventgrid(item))
        except Exception:
            failed += 1
    if failed:
        return 500, json.dumps({"error": f"{failed} of {len(events)} invocations failed"}).encode(), {}
    return 202, b"", {}


def make_handler(http: list[HttpFunction], timers: dict[str, Any], key: str,
                 eventgrid: dict[str, Any] | None = None, function_keys: dict[str, str] | None = None):
    function_keys = function_keys or {}

    def opens(name: str, given: set[str | None]) -> bool:
        return key in given or (name in function_keys and function_keys[name] in given)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 64 * 1024  # one write per response, as a real server does

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            headers = dict(headers or {})
            headers.setdefault("Content-Type", "application/json")
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _dispatch(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if url.path.startswith("/admin/functions/") and self.command == "POST":
                return self._timer(url.path.rsplit("/", 1)[-1], params)
            if url.path.lower() == "/runtime/webhooks/eventgrid":
                if not opens("eventgrid_extension", {self.headers.get("x-functions-key"), params.get("code")}):
                    return self._send(401, b"")
                status, out, headers = eventgrid_webhook(eventgrid or {}, self.command, params, self.headers, body)
                return self._send(status, out, headers)
            if not url.path.startswith("/api/"):
                return self._send(404, b'{"error":"not found"}')
            path = url.path[len("/api/"):]
            for f in http:
                m = f.pattern.match(path)
                if not m:
                    continue
                if self.command not in f.methods:
                    continue
                if f.auth != "ANONYMOUS" and not opens(f.name, {self.headers.get("x-functions-key"),
                                                                 params.get("code")}):
                    return self._send(401, b"")
                req = func.HttpRequest(method=self.command, url=self.path, headers=dict(self.headers.items()),
                                       params=params, route_params=m.groupdict(), body=body)
                try:
                    resp = f.fn(req)
                except Exception as exc:  # the real host answers 500 on an unhandled exception
                    return self._send(500, json.dumps({"error": type(exc).__name__}).encode())
                headers = dict(resp.headers.items())
                if resp.mimetype and not any(k.lower() == "content-type" for k in headers):
                    headers["Content-Type"] = f"{resp.mimetype}; charset={resp.charset or 'utf-8'}"
                return self._send(resp.status_code, resp.get_body() or b"", headers)
            self._send(404, b'{"error":"no function for this route and method"}')

        def _timer(self, name: str, params: dict[str, str]) -> None:
            if self.headers.get("x-functions-key") != key:
                return self._send(401, b"")
            fn = timers.get(name)
            if fn is None:
                return self._send(404, b'{"error":"no such timer function"}')
            fn(TimerRequest(past_due=False))
            self._send(202, b"{}")

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _dispatch

    return Handler


class QueuePump:
    """Polls one queue and runs its function like the host: batch, visibility, dequeue count, poison."""

    def __init__(self, conn: str, queue_name: str, fn, host: dict[str, Any], stop: threading.Event):
        from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient
        q = host.get("extensions", {}).get("queues", {})
        self.batch = int(q.get("batchSize", 16))
        self.visibility = int(_seconds(q.get("visibilityTimeout", "00:00:00")))
        self.max_dequeue = int(q.get("maxDequeueCount", 5))
        self.max_poll = _seconds(q.get("maxPollingInterval", "00:00:02"))
        kwargs = dict(message_encode_policy=BinaryBase64EncodePolicy(),
                      message_decode_policy=BinaryBase64DecodePolicy())
        self.client = QueueClient.from_connection_string(conn, queue_name, **kwargs)
        self.poison = QueueClient.from_connection_string(conn, queue_name + "-poison", **kwargs)
        for c in (self.client, self.poison):
            try:
                c.create_queue()
            except Exception:
                pass
        # As the host: a new batch is fetched once the messages in flight drop to newBatchThreshold, so up to
        # batchSize + newBatchThreshold run at once per queue.
        self.threshold = int(q.get("newBatchThreshold", self.batch // 2))
        self.fn, self.stop, self.name = fn, stop, queue_name
        self.pool = ThreadPoolExecutor(self.batch + self.threshold)
        self.inflight = 0
        self.changed = threading.Condition()

    def run(self) -> None:
        idle = 0.05
        while not self.stop.is_set():
            with self.changed:
                while self.inflight > self.threshold and not self.stop.is_set():
                    self.changed.wait(0.5)
            try:
                msgs = list(self.client.receive_messages(max_messages=min(self.batch, 32), visibility_timeout=120))
            except Exception:
                msgs = []
            if not msgs:
                self.stop.wait(idle)
                idle = min(self.max_poll, idle * 2)
                continue
            idle = 0.05
            with self.changed:
                self.inflight += len(msgs)
            for m in msgs:
                self.pool.submit(self._tracked, m)

    def _tracked(self, m) -> None:
        try:
            self._one(m)
        finally:
            with self.changed:
                self.inflight -= 1
                self.changed.notify_all()

    def _one(self, m) -> None:
        body = m.content if isinstance(m.content, bytes) else base64.b64decode(m.content)
        qm = QueueMessage(id=m.id, body=body, dequeue_count=m.dequeue_count, pop_receipt=m.pop_receipt,
                               insertion_time=m.inserted_on, expiration_time=m.expires_on)
        try:
            self.fn(qm)
        except Exception:
            if m.dequeue_count >= self.max_dequeue:
                self.poison.send_message(body)
                self.client.delete_message(m)
            else:
                self.client.update_message(m, visibility_timeout=self.visibility)
            return
        self.client.delete_message(m)


def main(argv: list[str] | None = None) -> None:
    import os
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True, help="the host key: opens every function")
    parser.add_argument("--function-key", action="append", default=[], metavar="FUNCTION=KEY",
                        help="a key that opens only this function (or eventgrid_extension: the Event Grid webhook)")
    args = parser.parse_args(argv)
    http, queues, timers = load_functions()
    host = _host_json()
    stop = threading.Event()
    conn = os.environ["AzureWebJobsStorage"]
    for name, fn, trigger in queues:
        pump = QueuePump(conn, trigger["queueName"], fn, host, stop)
        threading.Thread(target=pump.run, name=f"queue-{name}", daemon=True).start()
    ThreadingHTTPServer.request_queue_size = 256  # accept bursts of concurrent deliveries like the real host
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(http, {n: f for n, f, _ in timers}, args.key,
                                                                       load_eventgrid_functions(),
                                                                       dict(k.split("=", 1) for k in args.function_key)))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
