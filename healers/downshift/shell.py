"""The model-downshift healer's imperative shell: intake → per-(app, tenant) lease → read → decide → gate → write →
read back → record.

* Serialised per (app, tenant): the state record (table `downshift`, PartitionKey = app, RowKey = tenant) holds the
  lease and the core's `DownshiftState`, so taking the lease and saving the state are guarded by the same ETag.
* The current value is read just before `core.decide`; the returned state is saved only after its write really
  happened; a write that is not carried out (kill switch, dry-run, policy deny/ask, ETag conflict, lock) saves
  `core.unapplied(before, after)` so the event is remembered but the switch is not.
* The timer tick reads every tenant's spend in one Kusto query, every tenant's state in one partition listing and
  every current value in one App Configuration listing, runs the pure core over the snapshot, and enqueues a
  per-tenant evaluation only where something would change (a trip, a restore step, drift → HELD, a release).
* Audit: healer `downshift`, resource = the app, subject = the tenant ("*" = app-wide), details = the decision
  with its inputs (spend, budget, %, forecast, trips, dwell, tier).
* Crash safety: before every write a pending-write intent (from, to, decision, at, the state to record) is saved in
  the record under the lease (`healers.downshift.intent`). The next evaluation resolves a leftover intent before it
  decides: landed → the switch is recorded as if confirmed (audited "acted", reason "recovered: ..."); still the
  old value → the intent is dropped and the event re-decided; a third value → HELD (`unrecorded_write`). The tick
  plans an evaluation for every tenant with a leftover intent.
* Budget outranks capacity across the app-wide value (`healers.downshift.guard`): before an app-wide restore, every
  tenant that inherits the app-wide value and is over budget gets its own Healer-managed value holding the model it
  reads now (recorded in its state as DOWNSHIFTED for budget); if that cannot be done safely the restore waits.
  The app-setting actuator has no per-tenant values: there an over-budget tenant makes the app-wide restore wait.
* A human pin on the app-wide value covers the tenants that inherit it (the actuator reports them pinned, so they
  are HELD and released on unpin): Healer never shadows a pinned app-wide value with tenant values, and never
  guards while the app-wide record is HELD (no restore happens then).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from collections.abc import Callable

from healers.downshift import block as block_mod
from healers.downshift import blocking, guard, lost, signals, throttle, warn
from healers.downshift import intent as intent_mod
from healers.downshift import spend as spend_mod
from healers.downshift.actuators import Current, WriteConflict, WritePinned, actuator_for
from healers.downshift.core import (BudgetSignal, CapacitySignal, Decision, DownshiftPolicy, DownshiftState, Inputs,
                                    PolicyError, SpendObservation, decide, unapplied)
from healers.downshift.ladder import LadderError
from healers.downshift.periods import PeriodError, period_at
from healers.downshift.rates import RateCard, RateCardError
from shared import approvals, audit, gate, monitor_alerts
from shared.alerts import Alert
from shared.config import ConfigError, DownshiftApp, Settings
from shared.state import Conflict, Record, Store, acquire_lease, safe_key
from shared.work import Discard, RetryLater, busy_delay, enqueue

log = logging.getLogger("healer.downshift")
HEALER = "downshift"
QUEUE = "healer-downshift"
TABLE = "downshift"
MAX_ATTEMPTS = 12
APP_ROW = "~app"
TARGET_PROPERTY = "healer.target"
TENANT_PROPERTY = "healer.tenant"
ACTIONS = {"downshift": "downshift.switch", "restore": "downshift.restore"}
Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Refused(Exception):
    pass


class GuardBlocked(Exception):
    """An over-budget tenant could not be held at its value: the app-wide restore must wait."""


# ---------------------------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class ManagedApp:
    config: DownshiftApp
    base_policy: DownshiftPolicy
    rates: RateCard | None = None       # spend from token metrics, priced in the spend query

    @property
    def key(self) -> str:
        return self.config.key_id

    @property
    def resource_id(self) -> str:
        return self.config.resource_id

    def policy(self, tenant: str) -> DownshiftPolicy:
        t = self.config.tenants.get(tenant)
        if t is None or (t.timezone is None and t.period is None and t.block is None):
            return self.base_policy
        return _tenant_policy(self.base_policy, t.timezone, t.period, t.block)

    def budget(self, tenant: str) -> float | None:
        t = self.config.tenants.get(tenant)
        if t is not None and t.budget is not None:
            return t.budget
        return None if tenant == "*" else self.config.default_budget


@lru_cache(maxsize=4096)
def _tenant_policy(base: DownshiftPolicy, timezone: str | None, period: str | None,
                   block: bool | None = None) -> DownshiftPolicy:
    return dataclasses.replace(base, timezone=timezone or base.timezone, period=period or base.period,
                               block=base.block if block is None else block)


def load_apps(settings: Settings) -> dict[str, ManagedApp]:
    out = {}
    for key, app in settings.downshift_apps.items():
        try:
            policy = DownshiftPolicy.from_config(app.policy)
            for name, t in app.tenants.items():
                if t.timezone or t.period:
                    _tenant_policy(policy, t.timezone, t.period)
        except (PolicyError, LadderError, PeriodError) as exc:
            raise ConfigError(f"setting HEALER_DOWNSHIFT_APPS: policy of {app.resource_id} is invalid: {exc}") \
                from None
        wide = app.tenants.get("*")
        if app.budget_names and policy.track_budget and (wide is None or wide.budget is None):
            # A budget alert trips tenant "*"; only the app-wide spend against an app-wide budget can ever clear it
            # (unknown data never upshifts), so without one the app would stay downshifted for good.
            raise ConfigError(f"setting HEALER_DOWNSHIFT_APPS: {app.resource_id} lists budgetNames but has no "
                              "app-wide budget (tenants[\"*\"].budget) to restore against")
        if app.actuator == "appSetting" and (policy.block or any(t.block for t in app.tenants.values())):
            raise ConfigError(f"setting HEALER_DOWNSHIFT_APPS: {app.resource_id} blocks tenants, which needs the "
                              "appConfiguration actuator (the block flag is an App Configuration key)")
        try:
            rates = RateCard.from_config(app.rate_card) if app.rate_card is not None else None
        except RateCardError as exc:
            raise ConfigError(f"setting HEALER_DOWNSHIFT_APPS: rateCard of {app.resource_id} is invalid: {exc}") \
                from None
        out[key] = ManagedApp(app, policy, rates)
    return out


def find_app(apps: dict[str, ManagedApp], resource_id: str) -> ManagedApp:
    app = apps.get(resource_id.rstrip("/").lower())
    if app is None:
        raise Refused(f"{resource_id[:300]} is not a downshift app (HEALER_DOWNSHIFT_APPS)")
    return app


def spend_source(settings: Settings) -> spend_mod.Source:
    schema = (settings.get("HEALER_DOWNSHIFT_SCHEMA") or "workspace").lower()
    if schema not in ("classic", "workspace"):
        raise ConfigError("setting HEALER_DOWNSHIFT_SCHEMA must be 'classic' or 'workspace'")
    return spend_mod.Source(schema, settings.get("HEALER_DOWNSHIFT_WORKSPACE_ID"),  # type: ignore[arg-type]
                            settings.get("HEALER_DOWNSHIFT_RESOURCE_ID"),
                            settings.require("HEALER_DOWNSHIFT_LOGS_ENDPOINT"))


@lru_cache(maxsize=4)
def _logs_client(endpoint: str, client_id: str | None) -> Any:
    from shared.identity import credential
    return spend_mod.make_client(endpoint, credential(client_id))


def clear_caches() -> None:
    from healers.downshift import actuators
    _logs_client.cache_clear()
    actuators.clear_caches()


# ---------------------------------------------------------------------------------------------- messages

def _iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.astimezone(dt.UTC).isoformat()


def _time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def spend_to_dict(obs: SpendObservation | None) -> dict[str, Any] | None:
    if obs is None:
        return None
    return {"spend": obs.spend, "budget": obs.budget, "forecast": obs.forecast, "as_of": _iso(obs.as_of),
            "period_key": obs.period_key}


def spend_from_dict(data: Any) -> SpendObservation | None:
    if not isinstance(data, dict):
        return None
    def num(v: Any) -> float | None:
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    return SpendObservation(num(data.get("spend")), num(data.get("budget")), num(data.get("forecast")),
                            _time(data.get("as_of")), str(data["period_key"])[:16] if data.get("period_key") else None)


def alert_message(alert: Alert, dimensions: dict[str, str]) -> dict[str, Any]:
    return {"v": 1, "kind": "alert", "alert": alert.model_dump(mode="json"), "dimensions": dimensions, "attempt": 0}


def budget_message(alert: Any, received_at: dt.datetime) -> dict[str, Any]:
    return {"v": 1, "kind": "budget", "attempt": 0, "receivedAt": _iso(received_at), "budget": {
        "alert_id": alert.alert_id, "kind": alert.threshold_type, "spent_ratio": alert.spent_ratio,
        "forecast_ratio": alert.forecast_ratio, "amount": alert.budget, "spent": alert.spent,
        "forecast": alert.forecast, "at": _iso(alert.fired_at), "name": alert.budget_name, "scope": alert.scope,
        "schema": alert.schema}}


def tick_message(app: ManagedApp, tenant: str, obs: SpendObservation | None) -> dict[str, Any]:
    return {"v": 1, "kind": "tick", "app": app.key, "tenant": tenant, "spend": spend_to_dict(obs), "attempt": 0}


# ---------------------------------------------------------------------------------------------- context

@dataclass
class Context:
    settings: Settings
    owner: str
    now: Clock = utcnow
    apps: dict[str, ManagedApp] = field(default_factory=dict)
    actuators: dict[str, Any] = field(default_factory=dict)
    attempt: int = 0  # of the work message being handled: how long to back off when a tenant is busy

    @classmethod
    def create(cls, settings: Settings, owner: str, now: Clock = utcnow) -> Context:
        return cls(settings, owner, now, load_apps(settings))

    def actuator(self, app: ManagedApp) -> Any:
        if app.key not in self.actuators:
            self.actuators[app.key] = actuator_for(self.settings, app.config)
        return self.actuators[app.key]

    @property
    def store(self) -> Store:
        return Store(self.settings, TABLE)


def _audit(ctx: Context, app: ManagedApp | None, tenant: str, outcome: str, reason: str, **details: Any) -> None:
    audit.record(ctx.settings, healer=HEALER, outcome=outcome, reason=reason,
                 resource=app.resource_id if app else "", subject=tenant, details=details, now=ctx.now())


# ---------------------------------------------------------------------------------------------- handler

def handle(settings: Settings, message: dict[str, Any], *, owner: str, now: Clock = utcnow,
           ctx: Context | None = None) -> str:
    """Process one work message; returns the outcome (several joined by ',' for a budget alert on many apps)."""
    if gate.config_refusal(settings, healer=HEALER, subject=str(message.get("tenant") or "*")[:64],
                           resource=str(message.get("app") or "")[:600],
                           what=f"evaluate a {str(message.get('kind'))[:20]} message") is not None:
        return "refused"  # an invalid configuration acts on nothing (and is not read further)
    ctx = ctx or Context.create(settings, owner, now)
    ctx.attempt = int(message.get("attempt", 0) or 0)
    kind = message.get("kind")
    if kind == "alert":
        return _handle_alert(ctx, message)
    if kind == "budget":
        return _handle_budget(ctx, message)
    if kind == "tick-batch" or (kind == "tick" and message.get("queued")):
        return _handle_queued(ctx, message)
    if kind in ("tick", "approved"):
        app = ctx.apps.get(str(message.get("app", "")).lower())
        if app is None:
            _audit(ctx, None, str(message.get("tenant", "*"))[:64], "refused",
                   f"{str(message.get('app'))[:300]} is no longer a downshift app; message dropped")
            return "refused"
        tenant = str(message.get("tenant") or "*")[:64]
        obs = spend_from_dict(message.get("spend"))
        if obs is None and kind == "approved" and app.policy(tenant).track_budget:
            obs = fresh_spend(ctx, app, tenant)  # an approved restore must see this period's spend
        return Evaluation(ctx, app, tenant).run(
            spend=obs, approval_id=message.get("approvalId"),
            approved_action=message.get("action"), approved_to=message.get("to"))
    raise Discard(f"unknown message kind {str(kind)[:40]!r}")


def _handle_queued(ctx: Context, message: dict[str, Any]) -> str:
    """A chunk the tick queued (`healers.downshift.tick`): each tenant evaluated under its own lease."""
    from healers.downshift import tick as tick_mod
    app = ctx.apps.get(str(message.get("app", "")).lower())
    if app is None:
        _audit(ctx, None, "*", "refused", f"{str(message.get('app'))[:300]} is no longer a downshift app; "
                                          f"{len(tick_mod.items(message))} queued evaluations dropped")
        return "refused"

    def evaluate(tenant: str, spend: Any) -> str:
        return Evaluation(ctx, app, tenant).run(spend=spend_from_dict(spend))
    return tick_mod.handle_queued(ctx.settings, TABLE, safe_key(app.key), message, evaluate, ctx.now())


def resolve_alert(apps: dict[str, ManagedApp], alert: Alert, dimensions: dict[str, str]) -> tuple[ManagedApp, str]:
    """The app (rule's healer.target custom property, else an app listing the rule) and tenant (healer.tenant, else
    the alert's split dimension, else "*")."""
    target = alert.custom_properties.get(TARGET_PROPERTY)
    if target:
        app = find_app(apps, target)
    else:
        matches = [a for a in apps.values() if alert.rule.lower() in (r.lower() for r in a.config.rules)]
        if not matches:
            raise Refused(f"rule {alert.rule!r} has no {TARGET_PROPERTY} custom property and no app lists it in "
                          "'rules'")
        app = matches[0]
    tenant = alert.custom_properties.get(TENANT_PROPERTY) or dimensions.get(app.config.tenant_dimension) or "*"
    import re
    if not re.match(r"^(\*|[A-Za-z0-9][A-Za-z0-9._@-]{0,63})$", tenant):
        raise Refused(f"tenant {tenant[:64]!r} is not a valid tenant name")
    if app.config.actuator == "appSetting" and tenant != "*":
        tenant = "*"  # the app-setting actuator is app-wide: a tenant's capacity alert moves the whole app
    return app, tenant


def _handle_alert(ctx: Context, message: dict[str, Any]) -> str:
    alert = Alert.model_validate(message["alert"])
    dims = {str(k)[:64]: str(v)[:64] for k, v in (message.get("dimensions") or {}).items()}
    try:
        app, tenant = resolve_alert(ctx.apps, alert, dims)
    except Refused as exc:
        _audit(ctx, None, dims.get("tenant", "*"), "refused", str(exc), alertId=alert.alert_id, rule=alert.rule)
        return "refused"
    kind, why = throttle.classify(alert.custom_properties, dims)
    if kind == "quota":
        outcome = signals.quota(ctx, app, tenant, alert, dims, why)
    else:
        at = (alert.resolved_at or alert.fired_at) if not alert.fired else alert.fired_at
        signal = CapacitySignal(alert.alert_id, alert.monitor_condition, at)
        outcome = Evaluation(ctx, app, tenant).run(
            capacity=signal, subscription=monitor_alerts.subscription_of(*alert.target_ids, app.resource_id),
            event={"alertId": alert.alert_id, "rule": alert.rule, "condition": alert.monitor_condition})
    # Close the loop in Azure Monitor (optional, HEALER_ALERT_ACK): acted on, or refused (quota, not capacity).
    monitor_alerts.acknowledge_alert(ctx.settings, HEALER, alert, app.resource_id, outcome.split(",")[0], ctx.now(),
                                     subject=tenant)
    return outcome


def _handle_budget(ctx: Context, message: dict[str, Any]) -> str:
    b = message["budget"]
    name = str(b.get("name") or "")
    apps = [a for a in ctx.apps.values() if name.lower() in (n.lower() for n in a.config.budget_names)]
    if not apps:
        _audit(ctx, None, "*", "refused", f"budget {name[:100]!r} is not listed in any downshift app's "
               "budgetNames", budget=b)
        return "refused"
    received = _time(message.get("receivedAt"))
    signal = BudgetSignal(str(b["alert_id"]), "Forecasted" if b.get("kind") == "Forecasted" else "Actual",
                          b.get("spent_ratio"), b.get("forecast_ratio"), b.get("amount"), _time(b.get("at")) or received)
    outcomes = [Evaluation(ctx, app, "*").run(budget=signal, event={"budget": name, "alertId": signal.alert_id,
                                                                    "schema": b.get("schema")})
                for app in apps]
    return ",".join(outcomes)


# ---------------------------------------------------------------------------------------------- one evaluation

@dataclass
class Evaluation:
    """One serialised evaluation of one (app, tenant)."""
    ctx: Context
    app: ManagedApp
    tenant: str

    @property
    def partition(self) -> str:
        return safe_key(self.app.key)

    def run(self, *, spend: SpendObservation | None = None, capacity: CapacitySignal | None = None,
            budget: BudgetSignal | None = None, release: bool = False, approval_id: str | None = None,
            approved_action: str | None = None, approved_to: str | None = None,
            event: dict[str, Any] | None = None, by: str = "", lift: bool = False,
            subscription: str | None = None) -> str:
        ctx, store = self.ctx, self.ctx.store
        t = ctx.now()
        lease = acquire_lease(store, self.partition, safe_key(self.tenant), ctx.owner, ctx.settings.lease_seconds, t)
        if lease is None:
            raise RetryLater(busy_delay(ctx.attempt, base=1.0), f"another worker is evaluating {self.app.resource_id} "
                                                      f"tenant {self.tenant}")
        record = lease.record
        block_approval = approved_action in blocking.BLOCK_ACTIONS
        try:
            outcome = "none"
            if not lift:
                outcome = self._decide_and_act(
                    record, spend=spend, capacity=capacity, budget=budget, release=release,
                    approval_id=None if block_approval else approval_id, approved_action=approved_action,
                    approved_to=approved_to, event=event or {}, by=by, subscription=subscription)
            blocked = blocking.step(self, record, spend, lift=lift, by=by,
                                    approval_id=approval_id if block_approval else None,
                                    approved_action=approved_action)
            if outcome != "duplicate":
                signals.warn_step(self, record, spend)
            if blocked is None or outcome == "duplicate":
                return outcome
            return blocked if outcome in ("none", "held") else f"{outcome},{blocked}"
        finally:
            record.data["lease"] = None
            try:
                store.replace(record)
            except Conflict:
                log.warning("lease on %s/%s was taken over before release", self.app.key, self.tenant)

    # -------------------------------------------------------------------------------------- core
    def _decide_and_act(self, record: Record, *, spend, capacity, budget, release, approval_id, approved_action,
                        approved_to, event: dict[str, Any], by: str, subscription: str | None = None) -> str:
        ctx, app, tenant = self.ctx, self.app, self.tenant
        policy = app.policy(tenant)
        before = (DownshiftState.from_dict(record.data["state"]) if record.data.get("state")
                  else DownshiftState(app=app.resource_id, tenant=tenant))
        actuator = ctx.actuator(app)
        current: Current = actuator.read(tenant)        # just before deciding
        if record.data.get("pending") is not None:    # a write was in flight when a previous evaluation stopped
            before = self._recover(record, before, current, policy)
        t = ctx.now()
        if capacity is not None and capacity.condition == "Fired":
            before = lost.remember(before, capacity.alert_id, subscription)
        elif capacity is None and budget is None and not release:
            before, capacity, asked = signals.ask_monitor(self, before, policy)
            if asked:
                event = {**event, "monitor": asked}
        if spend is not None and spend.budget is None:
            spend = dataclasses.replace(spend, budget=app.budget(tenant))
        probe = self._probe(policy, before)
        inputs = Inputs(observed=current.observed, spend=spend, capacity=capacity, budget_alert=budget,
                        probe_ok=probe, release=release, app_switches=self._app_switches(policy))
        decision, after = decide(inputs, before, policy, t)
        details: dict[str, Any] = {"decision": decision.to_dict(), "event": event,
                                   "current": {"value": current.value, "writtenBy": current.written_by,
                                               "pinned": current.pinned, "own": current.own}}
        if isinstance(event.get("monitor"), dict) and event["monitor"].get("attention"):  # notified (shared.notify)
            details.update(attention=event["monitor"]["attention"], attentionText=event["monitor"]["attentionText"])
        if by:
            details["by"] = by
        if decision.duplicate:
            _audit(ctx, app, tenant, "duplicate", decision.reason, **details)
            return "duplicate"
        if not decision.writes:
            self._save(record, after)
            if self._notable(decision, before, after, event, release):
                _audit(ctx, app, tenant, "recorded", decision.reason, **details)
            return {"hold": "held", "none": "none"}[decision.action] if after.status != "HELD" else "held"
        return self._gate_and_write(record, before, after, decision, current, details, approval_id,
                                    approved_action, approved_to)

    def _recover(self, record: Record, before: DownshiftState, current: Current,
                 policy: DownshiftPolicy) -> DownshiftState:
        """Resolve the intent a crash left behind (see `healers.downshift.intent`); returns the state to decide on."""
        ctx, app, tenant = self.ctx, self.app, self.tenant
        t = ctx.now()
        seen = {"value": current.value, "writtenBy": current.written_by, "own": current.own}
        try:
            pending = intent_mod.load(record.data.get("pending"))
        except (ValueError, TypeError, KeyError):
            state = intent_mod.held(before, current.value, t, "HELD: an unreadable pending write was left behind; "
                                    f"the value is {current.value!r}; Healer will not write until released")
            self._save(record, state, pending=None)
            _audit(ctx, app, tenant, "recorded", state.last_reason, current=seen, recovery="unreadable")
            return state
        assert pending is not None
        info = {k: v for k, v in pending.to_dict().items() if k != "after"}
        outcome = intent_mod.outcome(pending, current.value, current.written_by, current.own)
        move = f"{pending.action} {pending.from_model} → {pending.to_model}"
        if outcome == "landed":
            state = pending.state
            self._save(record, state, created=pending.created, pending=None)
            if pending.action in ("downshift", "restore"):
                self._record_app_switch(policy, pending.at)
            sentinel = ctx.actuator(app).bump_sentinel(t)  # the crash may have come before the sentinel bump
            _audit(ctx, app, tenant, "acted", f"recovered: {move} had landed ({current.value!r}, Healer's) before "
                   f"the evaluation stopped; recorded now as if confirmed — {pending.reason}",
                   pending=info, current=seen, recovery="landed", sentinel=sentinel)
            return state
        if outcome == "not_landed":
            self._save(record, before, pending=None)
            _audit(ctx, app, tenant, "recorded", f"an interrupted {move} never landed (the value is still "
                   f"{current.value!r}): intent dropped, re-deciding", pending=info, current=seen,
                   recovery="not_landed")
            return before
        state = intent_mod.held(before, current.value, t, f"HELD: {move} was interrupted and the value is now "
                                f"{current.value!r} ({'Healer' if current.written_by else 'not Healer'}'s, "
                                f"{'own' if current.own else 'inherited'}): neither; Healer will not write until "
                                "an operator releases it")
        self._save(record, state, pending=None)
        _audit(ctx, app, tenant, "recorded", state.last_reason, pending=info, current=seen, recovery="unknown")
        return state

    @staticmethod
    def _notable(decision: Decision, before: DownshiftState, after: DownshiftState, event: dict[str, Any],
                 release: bool) -> bool:
        if event or release or before.status != after.status:
            return True
        if decision.action == "hold" and decision.to_model is not None:  # a blocked switch: say so once
            return decision.reason.split(" — ")[0] != before.last_reason.split(" — ")[0]
        return False

    def _save(self, record: Record, state: DownshiftState, **extra: Any) -> None:
        record.data["state"] = state.to_dict()
        record.data.update(extra)
        record.columns = {"status": state.status, "tenant": self.tenant}
        self.ctx.store.replace(record)  # ETag-guarded: raises Conflict if the lease was lost meanwhile

    def _probe(self, policy: DownshiftPolicy, before: DownshiftState) -> bool | None:
        url = self.app.config.probe_url
        if not url or not policy.require_probe or before.status not in ("DOWNSHIFTED", "RESTORING"):
            return None
        import httpx
        target = policy.ladder.step_up(before.model, toward=before.baseline) if before.model in \
            policy.ladder.models and before.baseline in policy.ladder.models else None
        try:
            resp = httpx.get(url.replace("{model}", target or ""), timeout=10.0, follow_redirects=False)
        except httpx.HTTPError:
            return False
        return 200 <= resp.status_code < 300

    def _app_switches(self, policy: DownshiftPolicy) -> tuple[dt.datetime, ...]:
        if policy.max_app_switches_per_hour is None:
            return ()
        rec = self.ctx.store.get(self.partition, APP_ROW)
        return tuple(t for t in (_time(x) for x in (rec.data.get("switches") if rec else []) or []) if t)

    def _record_app_switch(self, policy: DownshiftPolicy, at: dt.datetime) -> None:
        if policy.max_app_switches_per_hour is None:
            return
        store = self.ctx.store
        for _ in range(5):
            rec = store.get(self.partition, APP_ROW) or Record(self.partition, APP_ROW, {})
            recent = [x for x in rec.data.get("switches") or [] if (_time(x) or at) > at - dt.timedelta(hours=1)]
            rec.data["switches"] = (recent + [_iso(at)])[-1000:]
            try:
                store.replace(rec)
                return
            except Conflict:
                continue

    # -------------------------------------------------------------------------------------- gates and the write
    def _gate_and_write(self, record: Record, before: DownshiftState, after: DownshiftState, decision: Decision,
                        current: Current, details: dict[str, Any], approval_id: str | None,
                        approved_action: str | None, approved_to: str | None) -> str:
        ctx, app, tenant = self.ctx, self.app, self.tenant
        action = ACTIONS[decision.action]
        details.update(action=action)
        held_back = lambda: self._save(record, unapplied(before, after))  # noqa: E731

        plan: guard.GuardPlan | None = None
        if tenant == "*" and decision.action == "restore":
            plan = self._guard_plan(current)
            details["guard"] = plan.to_dict()
            if plan.blocked:
                held_back()
                _audit(ctx, app, tenant, "skipped", f"app-wide restore {decision.from_model} → {decision.to_model} "
                       f"waits (budget outranks capacity): {plan.blocked}; retried on the next tick", **details)
                if approval_id:
                    approvals.mark_executed(ctx.settings, HEALER, approval_id, ctx.now(), "skipped")
                return "held"
        if approval_id:
            rec = approvals.get(ctx.settings, HEALER, approval_id)
            status = rec.data.get("status") if rec else None
            if status != "approved" or approved_action != action or approved_to != decision.to_model:
                held_back()
                reason = (f"approval {approval_id} does not cover this decision any more (approval {status}, for "
                          f"{approved_action} to {approved_to}; now {action} to {decision.to_model}): "
                          f"{decision.reason}")
                _audit(ctx, app, tenant, "skipped", reason, approvalId=approval_id, **details)
                if status == "approved":
                    approvals.mark_executed(ctx.settings, HEALER, approval_id, ctx.now(), "skipped")
                return "skipped"
        ladder = app.policy(tenant).ladder.models
        stopped = self.gate(
            action, decision.reason, details, held_back, approval_id=approval_id,
            approval_subject=(f"{app.key}|{tenant}|{decision.from_model}->{decision.to_model}|"
                              f"{_iso(before.since) or 'start'}|{before.trips}"),
            on_approve={"v": 1, "kind": "approved", "app": app.key, "tenant": tenant, "action": action,
                        "to": decision.to_model, "attempt": 0},
            on_parked=lambda pending, created: self._ask(pending, created, decision),
            params={"tenant": tenant, "from": decision.from_model, "to": decision.to_model,
                    "rung": ladder.index(decision.to_model) if decision.to_model in ladder else None,
                    "rungs": len(ladder)})
        if stopped:
            return stopped
        return self._write(record, before, after, decision, current, details, approval_id, plan)

    def gate(self, action: str, text: str, details: dict[str, Any], held_back: Callable[[], None], *,
             approval_id: str | None, approval_subject: str, on_approve: dict[str, Any],
             on_parked: Callable[[dict[str, Any], bool], dict[str, Any]] | None = None, ask: str | None = None,
             approved: bool = False, params: dict[str, Any] | None = None) -> str | None:
        """The one gating path of this healer, for every side effect (`downshift.switch`, `downshift.restore`,
        `downshift.block`, `downshift.unblock`): shared.gate (kill switch → policy deny → dry-run → ask). Returns the
        outcome when the action must not happen now (audited by the gate; `held_back` persists what was learned),
        None to act. `ask`: this healer's own reason to ask whatever the policy allows; `approved`: an operator's
        own request (a lift)."""
        ctx, app, tenant = self.ctx, self.app, self.tenant
        verdict = gate.check(ctx.settings, gate.Proposal(
            healer=HEALER, action=action, resource=app.resource_id, subject=tenant, plan=text,
            params=params or {"tenant": tenant}, details=details, target_dry_run=app.config.dry_run,
            approval_id=approval_id, approval_subject=approval_subject, on_approve=on_approve, queue=QUEUE,
            on_parked=on_parked, ask=ask, approved=approved), ctx.now())
        if verdict.act:
            details.update({k: verdict.details[k] for k in ("policy", "mode") if k in verdict.details})
            return None
        held_back()
        return verdict.outcome

    def _ask(self, pending: dict[str, Any], created: bool, decision: Decision) -> dict[str, Any]:
        """The gate parked the write for a human; its "pending" audit record notifies (shared.notify)."""
        return {"from": decision.from_model, "to": decision.to_model}

    def _write(self, record: Record, before: DownshiftState, after: DownshiftState, decision: Decision,
               current: Current, details: dict[str, Any], approval_id: str | None,
               plan: guard.GuardPlan | None = None) -> str:
        ctx, app, tenant = self.ctx, self.app, self.tenant
        actuator = ctx.actuator(app)
        assert decision.to_model is not None
        created = bool(record.data.get("created"))
        remove = False
        if decision.action == "restore" and created and decision.to_model == after.baseline and tenant != "*":
            base = actuator.read("*")
            remove = base.value == decision.to_model  # deleting Healer's own key-value restores inheritance
        if decision.action == "downshift" and not current.own:
            created = True
        if remove:
            created = False
        guarded: list[tuple[str, DownshiftState, bool]] = []
        if plan is not None and plan.hold:
            try:
                for other in plan.hold:
                    done = self._hold_tenant(other, current.value, decision.to_model, after.baseline)
                    if done is not None:
                        guarded.append(done)
            except GuardBlocked as exc:
                self._save(record, unapplied(before, after))
                details["guarded"] = [g[0] for g in guarded]
                _audit(ctx, app, tenant, "skipped", f"app-wide restore {decision.from_model} → {decision.to_model} "
                       f"waits (budget outranks capacity): {exc}; retried on the next tick", **details)
                if approval_id:
                    approvals.mark_executed(ctx.settings, HEALER, approval_id, ctx.now(), "skipped")
                return "held"
            details["guarded"] = [g[0] for g in guarded]
        # The intent first (under the lease): a crash after the write is then recovered, not HELD.
        record.data["pending"] = intent_mod.PendingWrite(
            decision.action, current.value, current.own, decision.to_model, not remove, ctx.now(), after.to_dict(),
            created, decision.reason).to_dict()
        ctx.store.replace(record)
        try:
            result = actuator.write(tenant, decision.to_model, current, decision.reason, ctx.now(), remove=remove)
        except (WriteConflict, WritePinned) as exc:
            self._save(record, unapplied(before, after), pending=None)
            if guarded:  # the holds only accompany an app-wide restore Healer makes: withdraw them
                details["unguarded"] = self._unhold(guarded, current.value, str(exc))
            # Re-evaluate soon with a fresh read (the core then sees the pin or the human's value and holds).
            enqueue(ctx.settings, QUEUE, tick_message(app, tenant, None), delay_seconds=1)
            _audit(ctx, app, tenant, "skipped", f"write not carried out ({exc}): would {decision.reason}",
                   **details)
            if approval_id:
                approvals.mark_executed(ctx.settings, HEALER, approval_id, ctx.now(), "skipped")
            return "skipped"
        except Exception as exc:
            # Did it land? Unknown (e.g. a timeout after the service applied it): the intent stays, and the next
            # evaluation tells from the value.
            self._save(record, unapplied(before, after))
            if approval_id:  # the follow-up notification belongs to the approval's incident
                details["approvalId"] = approval_id
            _audit(ctx, app, tenant, "failed", f"write failed ({type(exc).__name__}): would {decision.reason}; the "
                   "next evaluation checks whether it landed", **details)
            raise
        self._save(record, after, created=created, pending=None)
        self._record_app_switch(app.policy(tenant), ctx.now())
        details["write"] = result.details
        details["readBack"] = {"value": result.value, "confirmed": result.confirmed}
        if approval_id:
            details["approvalId"] = approval_id
            approvals.mark_executed(ctx.settings, HEALER, approval_id, ctx.now(), "acted")
        problems = [f"{k} {result.details[k]}" for k in ("sentinelError", "readBackError") if k in result.details]
        note = "" if result.confirmed else (f"; read back {result.value!r}"
                                            + (f" ({'; '.join(problems)})" if problems else "")
                                            + ": drift will be checked on the next tick")
        restart = "; the app restarts to apply it" if result.details.get("restart") not in (False, None) else ""
        _audit(ctx, app, tenant, "acted", f"{decision.reason}{restart}{note}", **details)
        return "acted"

    # -------------------------------------------------------------------------------------- restore guard
    def _guard_plan(self, current: Current) -> guard.GuardPlan:
        """Which inheriting tenants an app-wide restore from `current` would upshift although over budget."""
        ctx, app = self.ctx, self.app
        t = ctx.now()
        app_wide = app.config.actuator == "appSetting"
        currents = {} if app_wide else ctx.actuator(app).read_all()
        states, pending = _records(ctx, app)
        result: spend_mod.SpendResult | None = None
        if app.base_policy.track_budget:  # tenant policies differ from the app's only in time zone and period
            try:
                results, _, _ = collect_spend(ctx, [app], t)
                result = results.get(app.key)
            except Exception:
                log.warning("spend query for the restore guard of %s failed", app.key, exc_info=True)
        self._guard_spend = result
        return guard.plan(app, states, currents, result, t, current.value, app_wide_only=app_wide,
                          pending=pending - {"*"})

    def _hold_tenant(self, tenant: str, value: str | None, to_model: str, baseline: str | None
                     ) -> tuple[str, DownshiftState, bool] | None:
        """Give one inheriting over-budget tenant its own value holding `value`, under its lease, with an intent.
        Returns (tenant, state before, created before) when written; None when it no longer needs it; raises
        GuardBlocked when it cannot be done safely now."""
        ctx, app, store = self.ctx, self.app, self.ctx.store
        t = ctx.now()
        lease = acquire_lease(store, self.partition, safe_key(tenant), f"{ctx.owner}/guard",
                              ctx.settings.lease_seconds, t)
        if lease is None:
            raise GuardBlocked(f"tenant {tenant} is being evaluated")
        rec = lease.record
        try:
            if rec.data.get("pending") is not None:
                raise GuardBlocked(f"tenant {tenant} has a write in flight")
            prev = (DownshiftState.from_dict(rec.data["state"]) if rec.data.get("state")
                    else DownshiftState(app=app.resource_id, tenant=tenant))
            prev_created = bool(rec.data.get("created"))
            actuator = ctx.actuator(app)
            cur = actuator.read(tenant)
            if cur.own or prev.status == "HELD":
                return None            # its own value now (the app-wide write does not move it), or an operator's
            if cur.pinned:
                raise GuardBlocked("the app-wide value is pinned")
            if cur.value != value:
                raise GuardBlocked(f"the app-wide value changed since it was read ({cur.value!r})")
            policy = app.policy(tenant)
            period = period_at(t, policy.timezone, policy.period)
            obs = spend_mod.observation(getattr(self, "_guard_spend", None), app.config.role, tenant, period,
                                        app.budget(tenant))
            why = guard.over_budget(prev, obs, policy, t)
            if not why or value is None:
                return None
            new = guard.held_state(prev, obs, policy, value, baseline, t, why)
            reason = f"{new.last_reason}; the app-wide value goes {value} → {to_model} next"
            new = dataclasses.replace(new, last_reason=reason[:1000])
            rec.data["pending"] = intent_mod.PendingWrite("hold", value, False, value, True, t, new.to_dict(), True,
                                                          reason).to_dict()
            store.replace(rec)
            try:
                result = actuator.write(tenant, value, cur, reason, t)
            except (WriteConflict, WritePinned) as exc:
                rec.data["pending"] = None
                store.replace(rec)
                raise GuardBlocked(f"tenant {tenant}: {exc}") from exc
            Evaluation(ctx, app, tenant)._save(rec, new, created=True, pending=None)
            _audit(ctx, app, tenant, "acted", reason, guard={"value": value, "appWideTo": to_model, "why": why,
                                                             "statusBefore": prev.status},
                   write=result.details, readBack={"value": result.value, "confirmed": result.confirmed})
            return tenant, prev, prev_created
        finally:
            rec.data["lease"] = None
            try:
                store.replace(rec)
            except Conflict:
                log.warning("lease on %s/%s was taken over before release", app.key, tenant)

    def _unhold(self, guarded: list[tuple[str, DownshiftState, bool]], value: str | None, why: str) -> list[str]:
        """The app-wide restore did not happen (a human changed or pinned the app-wide value meanwhile): remove the
        values just written to hold tenants, so they follow the app-wide value (and a human's pin) again. Best
        effort: a hold that cannot be withdrawn stays, recorded, and restores on the tenant's own path."""
        ctx, app, store = self.ctx, self.app, self.ctx.store
        undone = []
        for tenant, prev, prev_created in guarded:
            t = ctx.now()
            lease = acquire_lease(store, self.partition, safe_key(tenant), f"{ctx.owner}/guard",
                              ctx.settings.lease_seconds, t)
            if lease is None:
                continue
            rec = lease.record
            try:
                actuator = ctx.actuator(app)
                cur = actuator.read(tenant)
                if rec.data.get("pending") is not None or not (cur.own and cur.value == value
                                                               and cur.written_by == "healer"):
                    continue
                base = actuator.read("*")
                reason = (f"withdrew its own value {value}: the app-wide restore was not carried out ({why}); it "
                          f"inherits {base.value!r} again")
                rec.data["pending"] = intent_mod.PendingWrite("unhold", value, True, base.value, False, t,
                                                              prev.to_dict(), prev_created, reason).to_dict()
                store.replace(rec)
                actuator.write(tenant, value or "", cur, reason, t, remove=True)
                Evaluation(ctx, app, tenant)._save(rec, prev, created=prev_created, pending=None)
                _audit(ctx, app, tenant, "acted", reason, guard={"withdrawn": True})
                undone.append(tenant)
            except Exception:
                log.warning("could not withdraw the hold on %s/%s", app.key, tenant, exc_info=True)
            finally:
                rec.data["lease"] = None
                try:
                    store.replace(rec)
                except Conflict:
                    pass
        return undone


# ---------------------------------------------------------------------------------------------- operator release

def release(settings: Settings, resource_id: str, tenant: str, *, by: str, reason: str, owner: str,
            now: Clock = utcnow, unblock: bool = False) -> str:
    """An operator releases a HELD (app, tenant): Healer adopts the current value as the new baseline. With
    `unblock`, the operator lifts the tenant's block instead (and waives it for the rest of the period)."""
    ctx = Context.create(settings, owner, now)
    app = find_app(ctx.apps, resource_id)
    if app.config.actuator == "appSetting" and tenant != "*":
        raise Refused(f"{app.resource_id} uses the app-wide app-setting actuator: release tenant '*'")
    if unblock:
        return Evaluation(ctx, app, tenant).run(lift=True, event={"unblock": reason[:300]}, by=by)
    return Evaluation(ctx, app, tenant).run(release=True, event={"release": reason[:300]}, by=by)


# ---------------------------------------------------------------------------------------------- the timer tick

@dataclass
class TickReport:
    apps: int = 0
    tenants: int = 0
    enqueued: int = 0
    round_trips: int = 0
    spend_error: str = ""
    planned: list[tuple[str, str, str]] = field(default_factory=list)  # (app, tenant, why)
    messages: int = 0  # queue messages sent (evaluations go in chunks)
    already_queued: int = 0  # planned, but an evaluation from an earlier tick is still queued: not sent again


def _states(ctx: Context, app: ManagedApp) -> dict[str, DownshiftState]:
    return _records(ctx, app)[0]


def _records(ctx: Context, app: ManagedApp, markers: list[dict[str, Any]] | None = None
             ) -> tuple[dict[str, DownshiftState], set[str]]:
    """Every tenant's state of one app, and the tenants with a pending write: one partition listing (1,000 entities
    per page). `markers` collects the tick's queued-evaluation markers (`healers.downshift.tick`)."""
    import json

    from shared.storage import table
    out, pending = {}, set()
    entities = table(ctx.settings, TABLE).query_entities(
        "PartitionKey eq @pk", parameters={"pk": safe_key(app.key)}, select=["RowKey", "data"],
        results_per_page=1000)
    for entity in entities:
        if entity["RowKey"].startswith("~"):  # the app row, queued-evaluation markers
            if markers is not None and entity["RowKey"].startswith("~queued:"):
                try:
                    markers.append(json.loads(entity.get("data") or "{}"))
                except ValueError:
                    pass
            continue
        try:
            data = json.loads(entity.get("data") or "{}")
            if data.get("pending") is not None:  # its `after` state names the tenant (RowKey is lower-cased)
                after = (data["pending"].get("after") if isinstance(data["pending"], dict) else None) or {}
                pending.add(str(after.get("tenant") or (data.get("state") or {}).get("tenant")
                                or entity["RowKey"])[:64])
            state = DownshiftState.from_dict(data.get("state"))
        except (ValueError, TypeError, AttributeError):
            continue
        out[state.tenant] = state
    return out, pending


def collect_spend(ctx: Context, apps: list[ManagedApp], now: dt.datetime,
                  client: Any = None) -> tuple[dict[str, spend_mod.SpendResult | None], int, str]:
    """Spend results per app key (None: unknown), the number of query round trips, and any error."""
    source = spend_source(ctx.settings)
    groups: dict[tuple[str, str, RateCard | None], list[ManagedApp]] = {}
    for app in apps:
        groups.setdefault((app.config.cost_metric, app.config.tenant_dimension, app.rates), []).append(app)
    out: dict[str, spend_mod.SpendResult | None] = {}
    trips, errors = 0, []
    for (metric, dimension, rates), members in groups.items():
        starts = {period_at(now, app.base_policy.timezone, app.base_policy.period).start_utc for app in members}
        for app in members:
            for t in app.config.tenants.values():
                if t.timezone or t.period:
                    p = _tenant_policy(app.base_policy, t.timezone, t.period)
                    starts.add(period_at(now, p.timezone, p.period).start_utc)
        roles = None if any(a.config.role is None for a in members) else [a.config.role for a in members]
        try:
            client = client or _logs_client(source.endpoint, ctx.settings.get("AZURE_CLIENT_ID"))
            result = spend_mod.query_spend(client, source, metric, dimension, sorted(starts), now, roles, rates)
            trips += result.round_trips
        except spend_mod.SpendError as exc:
            trips += 1
            errors.append(exc.reason)
            result = None
        for app in members:
            out[app.key] = result
    return out, trips, "; ".join(errors)


def fresh_spend(ctx: Context, app: ManagedApp, tenant: str) -> SpendObservation | None:
    t = ctx.now()
    results, _, _ = collect_spend(ctx, [app], t)
    policy = app.policy(tenant)
    return spend_mod.observation(results.get(app.key), app.config.role, tenant,
                                 period_at(t, policy.timezone, policy.period), app.budget(tenant))


def plan_app(app: ManagedApp, states: dict[str, DownshiftState], currents: dict[str, Current],
             result: spend_mod.SpendResult | None, now: dt.datetime, actuator: Any, pending: Any = ()
             ) -> list[tuple[str, SpendObservation | None, str]]:
    """Pure: which tenants need a serialised evaluation now, with their spend and why (`pending`: tenants with a
    write intent left behind, always evaluated)."""
    tenants = set(app.config.tenants) | set(states) | {"*"} | set(pending)
    if result is not None and not result.unknown and (app.config.default_budget is not None):
        tenants |= {t for (r, t) in result.cells if t and (app.config.role is None or r == app.config.role)}
    if app.config.actuator == "appSetting":
        tenants = {"*"}
    plan = []
    for tenant in sorted(tenants):
        policy = app.policy(tenant)
        period = period_at(now, policy.timezone, policy.period)
        obs = spend_mod.observation(result, app.config.role, tenant, period, app.budget(tenant))
        before = states.get(tenant) or DownshiftState(app=app.resource_id, tenant=tenant)
        current = actuator.inherited(tenant, currents)
        if tenant not in states and not current.own and current.pinned:
            # A pinned app-wide value: a tenant Healer never recorded is evaluated (and HELD) only if it would have
            # something to do; no record per idle tenant.
            _, free = decide(Inputs(observed=dataclasses.replace(current, pinned=False).observed, spend=obs),
                             before, policy, now)
            if free.status == "NORMAL" and not free.budget_active and not free.capacity_active:
                continue
        decision, after = decide(Inputs(observed=current.observed, spend=obs), before, policy, now)
        why = ""
        if tenant in pending:
            why = "pending write"
        elif decision.writes:
            why = decision.action
        elif before.status != after.status:
            why = f"{before.status} → {after.status}"
        elif (decision.action == "hold" and decision.to_model is not None
              and decision.reason.split(" — ")[0] != before.last_reason.split(" — ")[0]):
            why = "blocked switch"
        elif (policy.block or after.blocked) and block_mod.decide_block(obs, after, policy, now)[0].writes:
            why = "block flag"
        elif policy.warn_forecast and warn.forecast_warnings(obs, after, policy, now)[0]:
            why = "forecast warning"
        elif policy.monitor_check and lost.due(after, policy, now):
            why = "ask Azure Monitor (Resolved lost?)"
        elif tenant in states and (before.budget_active != after.budget_active
                                   or before.budget_period != after.budget_period or before.reason != after.reason
                                   or (before.status == "NORMAL" and before.model != after.model)):
            why = "state change"
        if why:
            plan.append((tenant, obs, why))
    return plan


def tick(settings: Settings, *, owner: str, now: Clock = utcnow, client: Any = None) -> TickReport:
    """The timer: spend for every app and tenant, drift on every managed value; enqueue what must be evaluated
    (in chunks, skipping tenants whose evaluation is still queued: `healers.downshift.tick`)."""
    from healers.downshift import tick as tick_mod
    ctx = Context.create(settings, owner, now)
    report = TickReport(apps=len(ctx.apps))
    if not ctx.apps:
        return report
    t = ctx.now()
    apps = list(ctx.apps.values())
    spend, report.round_trips, report.spend_error = collect_spend(ctx, apps, t, client)
    if report.spend_error:
        _audit(ctx, None, "*", "failed", f"spend unknown this tick: {report.spend_error}")
    for app in apps:
        actuator = ctx.actuator(app)
        try:
            currents = actuator.read_all()
        except Exception as exc:  # one app's store being down must not stop the others
            _audit(ctx, app, "*", "failed", f"could not read the current values ({type(exc).__name__})")
            continue
        markers: list[dict[str, Any]] = []
        states, pending = _records(ctx, app, markers)
        plan = plan_app(app, states, currents, spend.get(app.key), t, actuator, pending)
        report.tenants += len(set(app.config.tenants) | set(states))
        report.planned.extend((app.key, tenant, why) for tenant, _, why in plan)
        queued = tick_mod.queued_tenants(markers, t)
        todo = [p for p in plan if p[0] not in queued]
        report.already_queued += len(plan) - len(todo)
        report.messages += tick_mod.enqueue_plan(settings, TABLE, safe_key(app.key), app.key, todo, t,
                                                 spend_to_dict, QUEUE)
        report.enqueued += len(todo)
    return report
