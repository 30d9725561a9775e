"""Drill: an AI app's tenants cross 80 % of their budgets, a 429 storm hits and resolves, an alert flaps, a human
pins a model, and a new month begins (in Auckland before UTC). Then an app-wide 429 storm resolves while a tenant
that inherits the app-wide value is over budget (the restore holds it at its model), and a worker dies between a
write and its state save (the next tick recovers it: no HELD, no second step down). Then a tenant with the block rung
on crosses 100 % and is blocked after an approval, then unblocked at the period boundary; and a 429 storm from the
AI gateway's own token limit (a quota) changes no model.

Healer's downshift functions run in this process with an injected clock (weeks pass in seconds); everything they
talk to is real and over the wire: Azurite (state, queue, audit), the Log Analytics stand-in (spend through
LogsQueryClient; its clock follows the drill's), the App Configuration stand-in (azure-appconfiguration, ETags,
locks). Webhooks go through the same handlers the Functions host calls (validate → queue → 202); the queue is
drained by the worker handler with the drill's clock. The timeline shows each transition and why.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import azure.functions as func

from drill.timeline import Timeline
from standins.appconfig import start_appconfig
from tests.alert_samples import alert_body
from standins.log_analytics import start_log_analytics
from standins.stack import LocalAzure, site_id

UTC = dt.timezone.utc
APP = site_id("ai-prod", "chat-web")
KEY = "ai:model"
WORKSPACE = "44444444-5555-6666-7777-888888888888"


class Clock:
    def __init__(self, now: dt.datetime, la: Any):
        self.now, self.la = now, la
        la.set_now(now)

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, when: dt.datetime) -> None:
        self.now = when
        self.la.set_now(when)

    def advance(self, **delta: float) -> None:
        self.set(self.now + dt.timedelta(**delta))


def _row(tenant: str, amount: float, at: dt.datetime) -> dict[str, Any]:
    return {"TimeGenerated": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "Name": "agent.cost.usd", "Sum": amount,
            "ItemCount": 1, "Properties": {"tenant": tenant}, "AppRoleName": "chat-web"}


def _alert(alert_id: str, condition: str, at: dt.datetime, tenant: str | None, **props: str) -> bytes:
    body = alert_body("log_search_fired.json", alert_id=alert_id, rule="chat-429-ratio", condition=condition,
                      fired=at, resolved=at, custom_properties={"healer.target": APP, **props}, tenant=tenant)
    return json.dumps(body).encode()


class WorkerDied(BaseException):
    """The Functions worker process dies: nothing after this point of the evaluation runs."""


class Drill:
    def __init__(self, tl: Timeline, clock: Clock, ac: Any, la: Any):
        from shared.config import Settings
        self.tl, self.clock, self.ac, self.la = tl, clock, ac, la
        self.settings = Settings()
        self.seen: set[str] = set()

    def stamp(self) -> str:
        return self.clock.now.strftime("%m-%d %H:%MZ")

    def post_alert(self, body: bytes) -> int:
        from healers.downshift import api
        from shared import api as shared_api
        req = func.HttpRequest(method="POST", url="http://localhost/api/alerts/downshift", headers={}, params={},
                               route_params={}, body=body)
        return shared_api.guarded("webhook", api.accept_alert, req).status_code

    def drain(self) -> list[str]:
        from healers.downshift import shell
        from shared.storage import queue
        from shared.work import run_queue_message
        q, outcomes = queue(self.settings, shell.QUEUE), []
        for _ in range(50):
            batch = list(q.receive_messages(max_messages=32, visibility_timeout=30))
            if not batch:
                break
            for m in batch:
                outcomes.append(run_queue_message(
                    self.settings, shell.QUEUE, m.content, m.dequeue_count or 1,
                    lambda msg: shell.handle(self.settings, msg, owner="drill-worker", now=self.clock),
                    shell.MAX_ATTEMPTS))
                q.delete_message(m)
        self.report()
        return outcomes

    def tick(self) -> Any:
        from healers.downshift import shell
        # The app keeps serving: its telemetry is fresh (a tenant without a budget; Healer ignores its spend).
        self.la.seed("AppMetrics", [_row("canary", 0.0, self.clock.now - dt.timedelta(minutes=1))])
        report = shell.tick(self.settings, owner="drill-timer", now=self.clock)
        self.tl.add("timer", f"[{self.stamp()}] tick: {report.round_trips} spend query, {report.enqueued} "
                             f"evaluation(s) queued {[t for _, t, _ in report.planned]}")
        self.drain()
        return report

    def report(self) -> None:
        from shared import audit
        for rec in reversed(list(audit.list_records(self.settings, day=self.clock.now.date(), healer="downshift",
                                                    limit=1000))):
            if rec["id"] in self.seen:
                continue
            self.seen.add(rec["id"])
            self.tl.add("healer", f"[{self.stamp()}] {rec['subject']:<7} {rec['outcome']:<9} "
                                  f"{rec['reason'][:170]}")

    def value(self, tenant: str | None, key: str = KEY) -> str | None:
        for item in self.ac.dump():
            if item["key"] == key and item["label"] == tenant:
                return item["value"]
        return None

    def approve_all(self) -> list[str]:
        from shared import approvals
        from shared.work import enqueue
        done = []
        for pending in approvals.list_pending(self.settings, "downshift", now=self.clock.now):
            decided = approvals.decide(self.settings, healer="downshift", aid=pending["id"], approve=True,
                                       by="on-call", note="drill", now=self.clock.now)
            enqueue(self.settings, decided["queue"], {**decided["message"], "approvalId": pending["id"]})
            done.append(pending["action"])
        self.tl.add("operator", f"[{self.stamp()}] approves {done}")
        return done

    def writes(self, tenant: str) -> int:
        return sum(1 for r in self.ac.requests()
                   if r["op"] in ("PUT", "DELETE") and r["key"] == KEY and r["label"] == tenant and r["status"] == 200)

    def state(self, tenant: str) -> dict[str, Any]:
        from healers.downshift import shell
        from shared.state import Store, safe_key
        rec = Store(self.settings, shell.TABLE).get(safe_key(APP.lower()), safe_key(tenant))
        return (rec.data.get("state") or {}) if rec else {}


def run(stack: LocalAzure) -> Timeline:
    tl = Timeline("downshift: budgets at 80 %, a 429 storm, a flapping alert, a human pin, a new month")
    la = start_log_analytics(stack.workdir, stack.ca, stack.secret)
    try:
        ac = start_appconfig(stack.workdir, stack.ca, stack.secret)
    except BaseException:
        la.stop()
        raise
    saved = dict(os.environ)
    try:
        apps = [{"resourceId": APP, "appConfigEndpoint": ac.endpoint, "key": KEY, "role": "chat-web",
                 "policy": {"ladder": ["gpt-4o", "gpt-4o-mini", "gpt-35-turbo"], "min_dwell_s": 600,
                            "max_dwell_s": 7200, "max_switches_per_hour": 3},
                 "tenants": {"*": {"budget": 100000}, "acme": {"budget": 100}, "globex": {"budget": 100},
                             "initech": {"budget": 100},
                             "umbrella": {"budget": 100}, "kiwi": {"budget": 100, "timezone": "Pacific/Auckland"},
                             "hooli": {"budget": 100, "block": True}}}]
        os.environ.update({
            "HEALER_TABLE_PREFIX": "drill" + uuid.uuid4().hex[:6],
            "HEALER_POLICY": json.dumps({"version": 1, "default": "deny", "rules": [
                {"action": "downshift.*", "resource": "*/resourceGroups/ai-prod/*", "effect": "allow"}]}),
            "HEALER_DOWNSHIFT_APPS": json.dumps(apps), "HEALER_DOWNSHIFT_SCHEMA": "workspace",
            "HEALER_DOWNSHIFT_WORKSPACE_ID": WORKSPACE, "HEALER_DOWNSHIFT_LOGS_ENDPOINT": la.endpoint})
        from healers.downshift import shell
        from shared.identity import credential
        credential.cache_clear()
        shell.clear_caches()
        ac.seed([{"key": KEY, "value": "gpt-4o"}])
        clock = Clock(dt.datetime(2026, 3, 30, 9, 0, tzinfo=UTC), la)
        d = Drill(tl, clock, ac, la)
        tl.add("setup", "chat-web reads ai:model per request (label = tenant, else the app-wide gpt-4o); ladder "
                        "gpt-4o → gpt-4o-mini → gpt-35-turbo; budgets $100/month; kiwi's month runs in Auckland")

        # 1. Spend: acme and umbrella burn past 80 %, kiwi past 80 % too; globex spent early; initech at 50 %.
        t = clock.now
        la.seed("AppMetrics", [_row("acme", 42.0, t - dt.timedelta(hours=30)), _row("acme", 43.0, t - dt.timedelta(hours=2)),
                               _row("umbrella", 88.0, t - dt.timedelta(hours=40)),
                               _row("kiwi", 84.0, t - dt.timedelta(hours=50)),
                               _row("globex", 30.0, t - dt.timedelta(days=20)),
                               _row("initech", 50.0, t - dt.timedelta(days=25))])
        tl.add("spend", f"[{d.stamp()}] acme $85 (fast), umbrella $88, kiwi $84, globex $30, initech $50 this month")
        d.tick()
        tl.check(d.value("acme") == d.value("umbrella") == d.value("kiwi") == "gpt-4o-mini",
                 "tenants over 80 % moved one rung down (acme, umbrella, kiwi → gpt-4o-mini)")
        tl.check(d.value("globex") is None and d.value("initech") is None and d.value(None) == "gpt-4o",
                 "tenants under their thresholds and the app-wide value untouched")

        # 2. A 429 storm for globex: 6 deliveries (two action groups + retries) at once, then Resolved.
        clock.advance(minutes=5)
        storm_id = str(uuid.uuid4())
        with ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(lambda _: d.post_alert(_alert(storm_id, "Fired", clock.now, "globex")), range(6)))
        tl.add("monitor", f"[{d.stamp()}] 429 storm on globex: 6 deliveries → HTTP {sorted(set(codes))}")
        outcomes = d.drain()
        tl.check(outcomes.count("acted") == 1 and outcomes.count("duplicate") == 5,
                 "storm: one downshift, five duplicates")
        clock.advance(minutes=20)
        d.post_alert(_alert(storm_id, "Resolved", clock.now, "globex"))
        tl.add("monitor", f"[{d.stamp()}] 429 alert on globex Resolved")
        d.drain()
        tl.check(d.value("globex") == "gpt-4o-mini", "Resolved alone does not upshift (dwell first)")
        la.seed("AppMetrics", [_row("initech", 0.01, clock.now - dt.timedelta(minutes=1))])
        clock.advance(minutes=11)
        d.tick()
        tl.check(d.value("globex") is None, "globex restored to gpt-4o after the dwell (Healer's key removed)")

        # 3. A flapping alert on initech: Fired / Resolved every few minutes for an hour.
        flap_id = str(uuid.uuid4())
        for i in range(6):
            d.post_alert(_alert(flap_id, "Fired", clock.now, "initech"))
            d.drain()
            clock.advance(minutes=4)
            d.post_alert(_alert(flap_id, "Resolved", clock.now, "initech"))
            d.drain()
            clock.advance(minutes=6)
            d.tick()
        st = d.state("initech")
        tl.add("check", f"[{d.stamp()}] initech after an hour of flapping: {d.writes('initech')} writes, trips "
                        f"{st.get('trips')}, status {st.get('status')}")
        tl.check(d.writes("initech") <= 3, "flapping: at most the hourly cap of switches (3)")
        tl.check(st.get("trips", 0) >= 3, "flapping: each re-trip counted (dwell grows exponentially)")

        # 4. A human pins acme: locks its key-value at gpt-4o.
        ac.human_edit(KEY, "acme", value="gpt-4o", tags={}, locked=True)
        tl.add("operator", f"[{d.stamp()}] pins acme to gpt-4o (value set by hand and locked)")
        before = d.writes("acme")
        clock.advance(minutes=10)
        d.tick()
        tl.check(d.state("acme").get("status") == "HELD" and d.writes("acme") == before
                 and d.value("acme") == "gpt-4o", "human pin: acme HELD, Healer never writes")

        # 5. A new month: first in Auckland (March 31, 11:00 UTC), then in UTC.
        clock.set(dt.datetime(2026, 3, 31, 11, 5, tzinfo=UTC))
        la.seed("AppMetrics", [_row("kiwi", 0.5, clock.now - dt.timedelta(minutes=2)),
                               _row("umbrella", 0.5, clock.now - dt.timedelta(minutes=2))])
        tl.add("clock", f"[{d.stamp()}] April 1 00:05 in Auckland; still March 31 in UTC")
        d.tick()
        clock.advance(minutes=11)
        d.tick()
        tl.check(d.value("kiwi") is None and d.value("umbrella") == "gpt-4o-mini",
                 "new month in Auckland: kiwi restored; umbrella (UTC) still in March, stays down")
        clock.set(dt.datetime(2026, 4, 1, 0, 5, tzinfo=UTC))
        la.seed("AppMetrics", [_row("umbrella", 0.2, clock.now - dt.timedelta(minutes=2))])
        tl.add("clock", f"[{d.stamp()}] April 1 00:05 UTC")
        d.tick()
        clock.advance(minutes=11)
        d.tick()
        tl.check(d.value("umbrella") is None, "new month in UTC: umbrella restored")
        tl.check(d.value("acme") == "gpt-4o" and d.state("acme").get("status") == "HELD",
                 "the pinned tenant stays HELD across the month boundary")

        # 6. An app-wide 429 storm (no tenant split) resolves while globex, which inherits the app-wide value, has
        #    burnt past 80 %: budget outranks capacity, so the app-wide restore holds globex at its model first.
        clock.set(dt.datetime(2026, 4, 2, 9, 0, tzinfo=UTC))
        wide_id = str(uuid.uuid4())
        d.post_alert(_alert(wide_id, "Fired", clock.now, None))
        tl.add("monitor", f"[{d.stamp()}] app-wide 429 storm Fired (no tenant dimension)")
        d.drain()
        tl.check(d.value(None) == "gpt-4o-mini" and d.value("globex") is None,
                 "app-wide downshift: tenants without their own value (globex, initech, ...) read gpt-4o-mini")
        clock.advance(minutes=20)
        d.post_alert(_alert(wide_id, "Resolved", clock.now, None))
        tl.add("monitor", f"[{d.stamp()}] app-wide 429 storm Resolved")
        d.drain()
        clock.advance(minutes=11)
        la.seed("AppMetrics", [_row("globex", 85.0, clock.now - dt.timedelta(minutes=20))])
        tl.add("spend", f"[{d.stamp()}] globex spends $85 of its $100 this morning, reading the app-wide gpt-4o-mini")
        d.tick()
        tl.check(d.value(None) == "gpt-4o", "the app-wide value restored to gpt-4o after the dwell")
        tl.check(d.value("globex") in ("gpt-4o-mini", "gpt-35-turbo") and d.writes("globex") == 3,
                 "globex (over budget) not upshifted: it got its own value before the app-wide restore")
        tl.check(d.value("initech") is None, "initech (under budget) follows the app-wide restore")

        # 7. A worker dies right after writing umbrella's downshift, before saving the state.
        from healers.downshift import actuators
        real_write = actuators.AppConfigActuator.write

        def write_then_die(self: Any, *args: Any, **kwargs: Any) -> Any:
            real_write(self, *args, **kwargs)
            raise WorkerDied("worker process killed after the write")
        clock.advance(minutes=5)
        msg = shell.alert_message(__import__("shared.alerts", fromlist=["parse_alert"]).parse_alert(
            json.loads(_alert(str(uuid.uuid4()), "Fired", clock.now, "umbrella"))), {"tenant": "umbrella"})
        actuators.AppConfigActuator.write = write_then_die  # type: ignore[method-assign]
        try:
            shell.handle(d.settings, msg, owner="doomed-worker", now=clock)
        except WorkerDied:
            tl.add("crash", f"[{d.stamp()}] umbrella's worker died after writing gpt-4o-mini, before saving state")
        finally:
            actuators.AppConfigActuator.write = real_write  # type: ignore[method-assign]
        d.report()
        clock.advance(seconds=d.settings.lease_seconds + 60)
        d.tick()
        st = d.state("umbrella")
        tl.check(d.value("umbrella") == "gpt-4o-mini" and st.get("status") == "DOWNSHIFTED"
                 and st.get("model") == "gpt-4o-mini", "next tick: the interrupted downshift recovered and recorded")
        tl.check(d.writes("umbrella") == 3, "no second step down (umbrella: one write for this trip)")

        # 8. The last rung: hooli (blocking on) crosses 100 % of its budget; the block waits for a human's approval,
        #    holds for the rest of April, and is lifted at the period boundary.
        clock.advance(minutes=10)
        la.seed("AppMetrics", [_row("hooli", 104.0, clock.now - dt.timedelta(hours=3))])
        tl.add("spend", f"[{d.stamp()}] hooli spends $104 of its $100 (blocking is on for hooli)")
        d.tick()
        tl.check(d.value("hooli") == "gpt-4o-mini" and d.value("hooli", "ai:blocked") is None,
                 "hooli downshifted; the block waits for approval (downshift.block defaults to ask)")
        tl.check(d.approve_all() == ["downshift.block"], "one approval asked: downshift.block for hooli")
        d.drain()
        tl.check(d.value("hooli", "ai:blocked") == "true", "after the approval hooli reads ai:blocked = true")
        clock.advance(minutes=30)
        d.post_alert(_alert(str(uuid.uuid4()), "Resolved", clock.now, "hooli"))
        d.drain()
        d.tick()
        tl.check(d.value("hooli", "ai:blocked") == "true", "a capacity signal never lifts the block")
        clock.set(dt.datetime(2026, 5, 1, 0, 5, tzinfo=UTC))
        la.seed("AppMetrics", [_row("hooli", 0.3, clock.now - dt.timedelta(minutes=2))])
        tl.add("clock", f"[{d.stamp()}] May 1 00:05 UTC: a new budget period")
        d.tick()
        tl.check(d.value("hooli", "ai:blocked") is None, "new period: hooli's block lifted (Healer's key removed)")

        # 9. A 429 storm from the AI gateway's own token limit (quota) on initech: six deliveries, no model switch.
        clock.advance(minutes=5)
        before = d.writes("initech")
        quota_id = str(uuid.uuid4())
        with ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(lambda _: d.post_alert(_alert(quota_id, "Fired", clock.now, "initech",
                                                                **{"healer.throttledBy": "gateway"})), range(6)))
        tl.add("monitor", f"[{d.stamp()}] gateway token-limit 429 storm on initech: 6 deliveries → HTTP "
                          f"{sorted(set(codes))}")
        outcomes = d.drain()
        tl.check(outcomes.count("ignored") == 1 and outcomes.count("duplicate") == 5,
                 "quota storm: recorded once as 'quota, not capacity', five duplicates")
        tl.check(d.writes("initech") == before, "quota storm: no model switch for initech")
    finally:
        os.environ.clear()
        os.environ.update(saved)
        la.stop()
        ac.stop()
    return tl
