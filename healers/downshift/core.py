"""The pure decision of the model-downshift healer, per (app, tenant) (tenant "*" = app-wide).

    NORMAL ──trip──▶ DOWNSHIFTED(reason, tier, since, trips) ──causes clear──▶ RESTORING
      ▲                  ▲                                                      │ one rung up per dwell;
      │                  └──────────── re-trip (trips + 1) ─────────────────────┤ at the baseline and
      │                                                                         │ read back:
      ├─────────────────────────────────────────────────────────────────────────┘
      └── operator release / unpin ── HELD ◀── human pin, value changed behind Healer's back, off-ladder value

`decide(inputs, state, policy, now)` merges the event (alert, budget alert, spend observation, observed model)
into the state record, then evaluates the levels: it is level-triggered, so a switch blocked by the dwell or the
hourly cap is retried by the next timer tick. Rules:

* one rung down the approved ladder per trip, never below the floor; restores climb one rung per dwell back to the
  baseline (the value before the first downshift);
* budget: enter at spend ≥ enter_ratio of budget or forecast ≥ forecast_enter_ratio; leave only when the period has
  reset (tenant time zone) or the budget was raised, and spend < exit_ratio (hysteresis);
* capacity: Fired trips, Resolved starts the restore path; restore needs the dwell (grows exponentially with trips,
  capped) and, optionally, a successful probe of the primary;
* budget outranks capacity: a capacity restore never upshifts an over-budget tenant;
* spend that is missing, stale or from another period is unknown: it never trips and never allows an upshift;
* a hard cap of switches per (app, tenant) per hour, and optionally per app across tenants;
* HELD when a human pinned the value, changed it behind Healer's back, or set a model not on the ladder: Healer
  never writes while HELD;
* idempotent on (alert id, condition): a re-delivered or out-of-order alert changes nothing.

Contract with the imperative shell: serialise calls per (app, tenant); read the current value just before calling;
persist the returned state only after a write decision was carried out (for a write that is not carried out, e.g.
policy ask/deny, dry-run or a failed ETag write, persist `unapplied(before, after)` instead).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from healers.downshift.ladder import Ladder
from healers.downshift.periods import GRAINS, Period, period_at, zone

Status = Literal["NORMAL", "DOWNSHIFTED", "RESTORING", "HELD"]
Action = Literal["downshift", "restore", "hold", "none"]
STATUSES: tuple[str, ...] = ("NORMAL", "DOWNSHIFTED", "RESTORING", "HELD")
HEALER = "healer"
HOUR = dt.timedelta(hours=1)
MAX_ALERTS = 16
MAX_SEEN = 32
MAX_ID = 512
MAX_REASON = 1000
STATE_VERSION = 1


class PolicyError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------- policy

@dataclass(frozen=True)
class DownshiftPolicy:
    ladder: Ladder
    enter_ratio: float = 0.80            # spend / budget at or above this trips
    forecast_enter_ratio: float = 1.00   # forecast / budget at or above this trips
    exit_ratio: float = 0.70             # spend / budget below this (after reset or raise) clears
    min_dwell_s: int = 900               # dwell after the first trip
    dwell_backoff: float = 2.0           # dwell × backoff^(trips − 1) ...
    max_dwell_s: int = 6 * 3600          # ... capped here
    trip_memory_s: int = 24 * 3600       # a trip this long after the previous one starts counting at 1 again
    max_switches_per_hour: int = 4       # hard cap per (app, tenant), sliding hour
    max_app_switches_per_hour: int | None = None  # optional cap across the app's tenants (`Inputs.app_switches`)
    timezone: str = "UTC"                # IANA zone of the tenant's budget period
    period: str = "month"                # month | quarter | year
    stale_after_s: int = 1800            # spend data older than this is unknown
    track_budget: bool = True            # False: capacity only; restores then need no spend data
    require_probe: bool = False          # restores wait for `Inputs.probe_ok is True`
    block: bool = False                  # the last rung: block the tenant at block_ratio (healers.downshift.block)
    block_ratio: float = 1.00            # spend / budget at or above this blocks (when `block`)
    warn_forecast: bool = True           # one warning per period when the forecast crosses enter/block ratio
    monitor_check: bool = True           # a capacity alert Fired past the dwell: ask Azure Monitor (lost Resolved?)

    def __post_init__(self) -> None:
        def number(name: str, lo: float, hi: float) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
                raise PolicyError(f"{name} must be a number in [{lo}, {hi}]")
        if not isinstance(self.ladder, Ladder):
            raise PolicyError("ladder must be a Ladder")
        number("enter_ratio", 0.01, 100)
        number("forecast_enter_ratio", 0.01, 100)
        number("exit_ratio", 0.0, 100)
        if self.exit_ratio >= self.enter_ratio:
            raise PolicyError("exit_ratio must be below enter_ratio (hysteresis)")
        number("min_dwell_s", 0, 30 * 86400)
        number("dwell_backoff", 1.0, 10.0)
        number("max_dwell_s", self.min_dwell_s, 30 * 86400)
        number("trip_memory_s", 0, 365 * 86400)
        number("max_switches_per_hour", 1, 1000)
        if self.max_app_switches_per_hour is not None:
            number("max_app_switches_per_hour", 1, 100000)
        number("stale_after_s", 1, 30 * 86400)
        number("block_ratio", 0.01, 100)
        if self.block_ratio < self.enter_ratio:
            raise PolicyError("block_ratio must be at or above enter_ratio (the block is the last rung)")
        if not all(isinstance(v, bool) for v in (self.block, self.warn_forecast, self.monitor_check)):
            raise PolicyError("block, warn_forecast and monitor_check must be true or false")
        zone(self.timezone)
        if self.period not in GRAINS:
            raise PolicyError(f"period must be one of {', '.join(GRAINS)}")

    def dwell_s(self, trips: int) -> int:
        if trips <= 1:
            return int(self.min_dwell_s)
        exponent = min(trips - 1, 64)
        return int(min(self.max_dwell_s, self.min_dwell_s * self.dwell_backoff ** exponent))

    @classmethod
    def from_config(cls, raw: Any) -> DownshiftPolicy:
        """From the per-app JSON config: {"ladder": [...] or {"models": [...], "floor": ...}, "enter_ratio": ...}."""
        if not isinstance(raw, dict):
            raise PolicyError("a downshift policy is a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise PolicyError(f"unknown policy fields: {', '.join(u[:40] for u in unknown[:5])}")
        if "ladder" not in raw:
            raise PolicyError("a downshift policy needs a ladder")
        values = dict(raw)
        values["ladder"] = Ladder.from_config(raw["ladder"])
        try:
            return cls(**values)
        except TypeError as exc:
            raise PolicyError(str(exc)) from exc

    def to_config(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["ladder"] = self.ladder.to_config()
        return out


# ---------------------------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class SpendObservation:
    spend: float | None                 # spend so far this period; None = unknown
    budget: float | None                # the tenant's budget for the period; None = unknown
    forecast: float | None = None       # forecast total at period end; None = unknown
    as_of: dt.datetime | None = None    # time of the newest data behind `spend`; None = freshness unknown
    period_key: str | None = None       # the period the numbers cover (periods.Period.key); None = current


@dataclass(frozen=True)
class CapacitySignal:
    alert_id: str
    condition: Literal["Fired", "Resolved"]
    at: dt.datetime                     # firedDateTime / resolvedDateTime


@dataclass(frozen=True)
class BudgetSignal:
    alert_id: str                       # budget.BudgetAlert.alert_id
    kind: Literal["Actual", "Forecasted"] = "Actual"
    spent_ratio: float | None = None
    forecast_ratio: float | None = None
    budget: float | None = None
    at: dt.datetime | None = None       # None: use `now`

    @classmethod
    def from_alert(cls, alert: Any, received_at: dt.datetime | None = None) -> BudgetSignal:
        return cls(alert.alert_id, alert.threshold_type, alert.spent_ratio, alert.forecast_ratio, alert.budget,
                   alert.fired_at or received_at)


@dataclass(frozen=True)
class ObservedModel:
    value: str | None                   # the model the app reads now; None = the key/setting is absent
    written_by: str | None = None       # HEALER when the value carries Healer's managed-by tag
    pinned: bool = False                # a human pinned it (e.g. the key-value is locked, or a pin tag)


@dataclass(frozen=True)
class Inputs:
    observed: ObservedModel | None = None   # None = not read in this call: nothing can be written
    spend: SpendObservation | None = None
    capacity: CapacitySignal | None = None
    budget_alert: BudgetSignal | None = None
    probe_ok: bool | None = None            # probe of the restore target; None = not probed
    release: bool = False                   # an operator released a HELD record
    app_switches: tuple[dt.datetime, ...] = ()  # Healer's switches for this app (all tenants), for the app cap


# ---------------------------------------------------------------------------------------------- state

@dataclass(frozen=True)
class DownshiftState:
    app: str
    tenant: str = "*"
    status: Status = "NORMAL"
    model: str | None = None                # the value Healer last wrote or adopted
    baseline: str | None = None             # the value to restore to
    reason: str = ""                        # "budget" | "capacity" while DOWNSHIFTED/RESTORING
    since: dt.datetime | None = None        # when the current status was entered
    trips: int = 0
    last_trip_at: dt.datetime | None = None
    last_switch_at: dt.datetime | None = None
    switches: tuple[dt.datetime, ...] = ()  # Healer's writes in the last hour
    budget_active: bool = False
    budget_period: str | None = None        # period key in which the budget reason was last confirmed
    budget_at_trip: float | None = None     # budget amount then (a higher budget later = "budget raised")
    alerts: dict[str, tuple[str, dt.datetime]] = field(default_factory=dict)  # alert id → (condition, at)
    seen: tuple[str, ...] = ()              # recent budget-alert dedup keys
    held_reason: str = ""                   # "pinned" | "external_change" | "off_ladder" | "unrecorded_write"
    held_value: str | None = None           # the value seen when HELD was entered
    last_reason: str = ""
    blocked: bool = False                   # Healer's block flag is set (healers.downshift.block)
    blocked_period: str | None = None       # the period it was set in (a new period lifts it)
    blocked_budget: float | None = None     # the budget then (a higher budget lifts it)
    blocked_since: dt.datetime | None = None
    block_waived: str | None = None         # period in which an operator lifted the block: no re-block in it
    warned: tuple[str, ...] = ()            # forecast warnings sent: "<period>|<downshift|block>"
    monitor_checked: tuple[str, ...] = ()   # alert ids whose lost Resolved was asked of Azure Monitor
    version: int = STATE_VERSION

    @property
    def capacity_active(self) -> bool:
        return any(cond == "Fired" for cond, _ in self.alerts.values())

    # -------------------------------------------------------------------------------------- storage
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable (strings, numbers, booleans, null, lists, objects); datetimes as ISO 8601 UTC."""
        return {
            "version": self.version, "app": self.app, "tenant": self.tenant, "status": self.status,
            "model": self.model, "baseline": self.baseline, "reason": self.reason, "since": _iso(self.since),
            "trips": self.trips, "last_trip_at": _iso(self.last_trip_at),
            "last_switch_at": _iso(self.last_switch_at), "switches": [_iso(t) for t in self.switches],
            "budget_active": self.budget_active, "budget_period": self.budget_period,
            "budget_at_trip": self.budget_at_trip,
            "alerts": {k: [c, _iso(t)] for k, (c, t) in self.alerts.items()},
            "seen": list(self.seen), "held_reason": self.held_reason, "held_value": self.held_value,
            "last_reason": self.last_reason, "blocked": self.blocked, "blocked_period": self.blocked_period,
            "blocked_budget": self.blocked_budget, "blocked_since": _iso(self.blocked_since),
            "block_waived": self.block_waived, "warned": list(self.warned),
            "monitor_checked": list(self.monitor_checked),
        }

    @classmethod
    def from_dict(cls, data: Any) -> DownshiftState:
        if not isinstance(data, dict):
            raise ValueError("state must be an object")

        def text(name: str, default: str | None = "", limit: int = MAX_ID) -> Any:
            v = data.get(name, default)
            if v is None:
                return default
            if not isinstance(v, str):
                raise ValueError(f"state.{name} must be a string")
            return v[:limit]

        status = text("status", "NORMAL")
        if status not in STATUSES:
            raise ValueError(f"unknown state status {status!r}")
        alerts_raw = data.get("alerts") or {}
        if not isinstance(alerts_raw, dict):
            raise ValueError("state.alerts must be an object")
        alerts: dict[str, tuple[str, dt.datetime]] = {}
        for k, v in list(alerts_raw.items())[:MAX_ALERTS]:
            if (isinstance(v, (list, tuple)) and len(v) == 2 and v[0] in ("Fired", "Resolved")
                    and isinstance(k, str)):
                alerts[k[:MAX_ID]] = (v[0], _parse_iso(v[1]))
        budget_at_trip = data.get("budget_at_trip")
        if budget_at_trip is not None and (isinstance(budget_at_trip, bool)
                                           or not isinstance(budget_at_trip, (int, float))):
            raise ValueError("state.budget_at_trip must be a number")
        trips = data.get("trips", 0)
        if isinstance(trips, bool) or not isinstance(trips, int) or trips < 0:
            raise ValueError("state.trips must be a non-negative integer")
        return cls(
            app=text("app", ""), tenant=text("tenant", "*"), status=status,  # type: ignore[arg-type]
            model=text("model", None), baseline=text("baseline", None), reason=text("reason", ""),
            since=_opt_iso(data.get("since")), trips=trips, last_trip_at=_opt_iso(data.get("last_trip_at")),
            last_switch_at=_opt_iso(data.get("last_switch_at")),
            switches=tuple(_parse_iso(t) for t in (data.get("switches") or [])[:1000]),
            budget_active=bool(data.get("budget_active", False)), budget_period=text("budget_period", None),
            budget_at_trip=None if budget_at_trip is None else float(budget_at_trip), alerts=alerts,
            seen=tuple(str(s)[:MAX_ID] for s in (data.get("seen") or [])[-MAX_SEEN:]),
            held_reason=text("held_reason", ""), held_value=text("held_value", None),
            last_reason=text("last_reason", "", MAX_REASON),
            blocked=bool(data.get("blocked", False)), blocked_period=text("blocked_period", None),
            blocked_budget=_opt_num(data.get("blocked_budget"), "blocked_budget"),
            blocked_since=_opt_iso(data.get("blocked_since")), block_waived=text("block_waived", None),
            warned=tuple(str(w)[:64] for w in (data.get("warned") or [])[-MAX_SEEN:]),
            monitor_checked=tuple(str(w)[:MAX_ID] for w in (data.get("monitor_checked") or [])[-MAX_SEEN:]),
        )


def _opt_num(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"state.{name} must be a number")
    return float(value)


def _iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.astimezone(dt.UTC).isoformat()


def _parse_iso(value: Any) -> dt.datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("expected an ISO 8601 time")
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _opt_iso(value: Any) -> dt.datetime | None:
    return None if value is None else _parse_iso(value)


# ---------------------------------------------------------------------------------------------- decision

@dataclass(frozen=True)
class Decision:
    action: Action
    from_model: str | None
    to_model: str | None
    reason: str                          # one line, with the inputs that drove it
    status_from: Status
    status_to: Status
    inputs: dict[str, Any]               # JSON-serialisable figures for the audit record
    duplicate: bool = False

    @property
    def writes(self) -> bool:
        return self.action in ("downshift", "restore")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def unapplied(before: DownshiftState, after: DownshiftState) -> DownshiftState:
    """The state to persist when a write decision was not carried out: keep what was learned from the event
    (alerts, budget flags, dedup keys), but not the switch itself."""
    return dataclasses.replace(
        after, status=before.status, model=before.model, baseline=before.baseline, reason=before.reason,
        since=before.since, trips=before.trips, last_trip_at=before.last_trip_at,
        last_switch_at=before.last_switch_at, switches=before.switches, held_reason=before.held_reason,
        held_value=before.held_value)


def _utc(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("datetimes must be timezone-aware")
    return when.astimezone(dt.UTC)


def _num(v: float | None) -> float | None:
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        return None
    return float(v)


def _money(v: float | None) -> str:
    return "unknown" if v is None else f"${v:,.2f}"


def _pct(v: float | None) -> str:
    return "unknown" if v is None else f"{v * 100:.1f}%"


def _span(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 60}m" if seconds >= 60 else f"{seconds}s"


@dataclass
class _Spend:
    known: bool
    why_unknown: str
    spend: float | None
    budget: float | None
    forecast: float | None
    ratio: float | None
    forecast_ratio: float | None
    age_s: float | None


def _assess(obs: SpendObservation | None, now: dt.datetime, period: Period, policy: DownshiftPolicy) -> _Spend:
    if obs is None:
        return _Spend(False, "no spend data in this evaluation", None, None, None, None, None, None)
    spend, budget, forecast = _num(obs.spend), _num(obs.budget), _num(obs.forecast)
    age = None if obs.as_of is None else (now - _utc(obs.as_of)).total_seconds()
    ratio = spend / budget if spend is not None and budget else None
    f_ratio = forecast / budget if forecast is not None and budget else None
    why = ""
    if spend is None:
        why = "spend unknown"
    elif budget is None or budget <= 0:
        why = "budget unknown"
    elif age is None:
        why = "data freshness unknown"
    elif age > policy.stale_after_s:
        why = f"spend data stale ({_span(age)} old > {_span(policy.stale_after_s)})"
    elif age < -300:
        why = "spend data from the future (clock skew)"
    elif obs.period_key is not None and obs.period_key != period.key:
        why = f"spend data is for period {obs.period_key[:16]}, not {period.key}"
    known = not why
    return _Spend(known, why, spend, budget, forecast if known else None, ratio if known else None,
                  f_ratio if known else None, age)


def decide(inputs: Inputs, state: DownshiftState, policy: DownshiftPolicy,
           now: dt.datetime) -> tuple[Decision, DownshiftState]:
    """Decide what to do for one (app, tenant) now; returns the decision and the new state record."""
    now = _utc(now)
    ladder = policy.ladder
    period = period_at(now, policy.timezone, policy.period)
    s = state
    notes: list[str] = []

    # ------------------------------------------------------------------ 1. merge the event (idempotent)
    duplicate = False
    if inputs.capacity is not None:
        sig = inputs.capacity
        at = _utc(sig.at)
        alert_id = sig.alert_id[:MAX_ID]
        prev = s.alerts.get(alert_id)
        if prev is not None and (prev[0] == sig.condition or at < prev[1]):
            duplicate = True
        else:
            alerts = dict(s.alerts)
            alerts[alert_id] = (sig.condition, at)
            if len(alerts) > MAX_ALERTS:  # forget the oldest resolved alerts first, then the oldest
                order = sorted(alerts, key=lambda k: (alerts[k][0] == "Fired", alerts[k][1]))
                for k in order[: len(alerts) - MAX_ALERTS]:
                    del alerts[k]
            s = dataclasses.replace(s, alerts=alerts)
            notes.append(f"capacity alert {sig.condition}")
    if inputs.budget_alert is not None:
        sig_b = inputs.budget_alert
        key = f"{sig_b.alert_id[:MAX_ID]}|Fired"
        if key in s.seen:
            duplicate = True
        else:
            s = dataclasses.replace(s, seen=(s.seen + (key,))[-MAX_SEEN:])
            at_b = _utc(sig_b.at) if sig_b.at is not None else now
            alert_period = period_at(at_b, policy.timezone, policy.period)
            spent_r, fc_r = _num(sig_b.spent_ratio), _num(sig_b.forecast_ratio)
            if alert_period.key != period.key:
                notes.append(f"budget alert from period {alert_period.key} ignored")
            elif not policy.track_budget:
                notes.append("budget alert ignored (budget not tracked)")
            else:
                trips_budget = ((spent_r is None and fc_r is None)  # unreadable amounts: a backstop still trips
                                or (spent_r is not None and spent_r >= policy.enter_ratio)
                                or (fc_r is not None and fc_r >= policy.forecast_enter_ratio))
                if trips_budget:
                    # The alert's amount is the Cost Management budget's, not the configured one the spend is
                    # compared with: a larger configured budget is no "budget raised". The backstop clears at the
                    # period reset.
                    s = dataclasses.replace(s, budget_active=True, budget_period=period.key, budget_at_trip=None)
                    notes.append(f"budget alert ({sig_b.kind}: spent {_pct(spent_r)}, forecast {_pct(fc_r)})")
                else:
                    notes.append(f"budget alert below enter threshold (spent {_pct(spent_r)})")
    if duplicate:
        current = state.model
        return Decision("none", current, current, "duplicate alert delivery (same alert id and condition, or "
                        "older than the last one seen): nothing to do", state.status, state.status,
                        {"status": state.status}, duplicate=True), state

    # ------------------------------------------------------------------ 2. spend → budget reason (hysteresis)
    sp = _assess(inputs.spend, now, period, policy)
    if policy.track_budget and sp.known:
        assert sp.ratio is not None and sp.budget is not None
        over = sp.ratio >= policy.enter_ratio or (
            sp.forecast_ratio is not None and sp.forecast_ratio >= policy.forecast_enter_ratio)
        if over:
            s = dataclasses.replace(s, budget_active=True, budget_period=period.key, budget_at_trip=sp.budget)
        elif s.budget_active:
            reset = s.budget_period != period.key
            raised = s.budget_at_trip is not None and sp.budget > s.budget_at_trip
            if (reset or raised) and sp.ratio < policy.exit_ratio:
                s = dataclasses.replace(s, budget_active=False, budget_period=None, budget_at_trip=None)
                notes.append("budget reason cleared (" + ("period reset" if reset else "budget raised") + ")")
    reason = "budget" if s.budget_active else ("capacity" if s.capacity_active else "")

    figures: dict[str, Any] = {
        "period": period.key, "period_end": _iso(period.end_utc), "spend": sp.spend, "budget": sp.budget,
        "spend_pct": None if sp.ratio is None else round(sp.ratio * 100, 2), "forecast": sp.forecast,
        "forecast_pct": None if sp.forecast_ratio is None else round(sp.forecast_ratio * 100, 2),
        "data_known": sp.known, "data_age_s": None if sp.age_s is None else round(sp.age_s),
        "budget_active": s.budget_active, "capacity_active": s.capacity_active,
        "observed": None if inputs.observed is None else inputs.observed.value,
        "observed_by": None if inputs.observed is None else inputs.observed.written_by,
    }

    def summary(st: DownshiftState) -> str:
        parts = []
        if sp.known:
            parts.append(f"spend {_money(sp.spend)} of {_money(sp.budget)} ({_pct(sp.ratio)})"
                         + (f", forecast {_money(sp.forecast)} ({_pct(sp.forecast_ratio)})"
                            if sp.forecast is not None else ""))
        else:
            parts.append(sp.why_unknown)
        fired = sum(1 for c, _ in st.alerts.values() if c == "Fired")
        if fired:
            parts.append(f"{fired} capacity alert(s) fired")
        parts.append(f"trips {st.trips}, dwell {_span(policy.dwell_s(max(st.trips, 1)))}")
        return "; ".join(notes + parts)

    observed = inputs.observed
    current = observed.value if observed is not None else state.model

    def finish(action: Action, to_model: str | None, text: str, new: DownshiftState) -> tuple[Decision, DownshiftState]:
        recent = [t for t in new.switches if now - t < HOUR]
        full = f"{text} — {summary(new)}"[:MAX_REASON]
        new = dataclasses.replace(new, switches=tuple(recent), last_reason=full)
        figures.update({"trips": new.trips, "dwell_s": policy.dwell_s(max(new.trips, 1)),
                        "switches_last_hour": len(recent), "status": new.status, "reason": new.reason,
                        "tier": ladder.models.index(new.model) if new.model in ladder.models else None})
        return Decision(action, current, to_model, full, state.status, new.status, figures), new

    # ------------------------------------------------------------------ 3. HELD: never fight an operator
    if s.status == "HELD":
        if observed is None:
            return finish("hold", None, f"held ({s.held_reason}): current value not read", s)
        releasable = (inputs.release
                      or (s.held_reason == "pinned" and not observed.pinned)
                      or (s.held_reason == "off_ladder" and ladder.allowed(observed.value)))
        if releasable and not observed.pinned and ladder.allowed(observed.value):
            how = ("operator release" if inputs.release
                   else "unpinned" if s.held_reason == "pinned" else "value back on the ladder")
            s = dataclasses.replace(s, status="NORMAL", since=now, model=observed.value, baseline=observed.value,
                                    reason="", held_reason="", held_value=None, trips=0, last_trip_at=None)
            return finish("none", observed.value, f"released from HELD ({how}); adopting {observed.value}", s)
        return finish("hold", None, f"held ({s.held_reason}): Healer does not write until an operator releases "
                      f"it (observed {observed.value!r})", s)

    if observed is not None:
        why_held = ""
        if observed.pinned:
            why_held = "pinned"
        elif s.status in ("DOWNSHIFTED", "RESTORING") and observed.value != s.model:
            why_held = "external_change"
        elif observed.value is not None and not ladder.allowed(observed.value):
            why_held = "off_ladder"
        elif (s.status == "NORMAL" and observed.value is not None and observed.value != s.model
              and observed.written_by == HEALER):
            # Tagged as Healer's but not recorded (a crash between the write and the state save, even of the first
            # write when no model was recorded yet, or a human edit that kept the tags): adopting it as the
            # baseline could step a second rung down and strand the downshift, so let an operator look.
            why_held = "unrecorded_write"
        if why_held:
            s = dataclasses.replace(s, status="HELD", since=now, held_reason=why_held, held_value=observed.value)
            text = {"pinned": f"a human pinned {observed.value!r}",
                    "external_change": f"the value was changed behind Healer's back ({state.model!r} → "
                                       f"{observed.value!r}, written by {observed.written_by or 'someone else'})",
                    "off_ladder": f"{observed.value!r} is not an approved model on the ladder",
                    "unrecorded_write": f"{observed.value!r} carries Healer's tag but Healer recorded "
                                        f"{s.model!r}"}[why_held]
            return finish("hold", None, f"HELD: {text}; Healer will not write", s)
        if s.status == "NORMAL" and observed.value is not None:
            s = dataclasses.replace(s, model=observed.value, baseline=observed.value)

    recent = tuple(t for t in s.switches if now - t < HOUR)
    s = dataclasses.replace(s, switches=recent)
    app_recent = [t for t in inputs.app_switches if now - _utc(t) < HOUR]
    cap_text = ""
    if len(recent) >= policy.max_switches_per_hour:
        cap_text = f"switch cap reached ({len(recent)}/{policy.max_switches_per_hour} in the last hour)"
    elif policy.max_app_switches_per_hour is not None and len(app_recent) >= policy.max_app_switches_per_hour:
        cap_text = (f"app switch cap reached ({len(app_recent)}/{policy.max_app_switches_per_hour} in the last "
                    "hour across tenants)")

    # A restore that reached the baseline is complete once the value is read back; a trip then starts afresh.
    if s.status == "RESTORING" and s.model is not None and s.model == s.baseline:
        if observed is not None:
            s = dataclasses.replace(s, status="NORMAL", since=now, reason="")
            notes.append(f"restore confirmed: back on {s.model}")
        elif reason:
            return finish("hold", None, f"{reason} trip while the restore to {s.model} is unconfirmed: current "
                          "value not read", s)

    # ------------------------------------------------------------------ 4. NORMAL: trip?
    if s.status == "NORMAL":
        if not reason:
            return finish("none", s.model, f"no action: {s.model or 'model unknown'} stays", s)
        if observed is None or observed.value is None or s.model is None:
            return finish("hold", None, f"{reason} trip, but the current model is unknown; nothing written", s)
        target = ladder.step_down(s.model)
        if target is None:
            return finish("hold", None, f"{reason} trip, but {s.model} is the floor of the ladder", s)
        if cap_text:
            return finish("hold", target, f"{reason} trip to {target} blocked: {cap_text}", s)
        fresh = s.last_trip_at is None or (now - s.last_trip_at).total_seconds() > policy.trip_memory_s
        trips = 1 if fresh else s.trips + 1
        s = dataclasses.replace(s, status="DOWNSHIFTED", since=now, model=target, reason=reason, trips=trips,
                                last_trip_at=now, last_switch_at=now, switches=recent + (now,))
        return finish("downshift", target, f"downshift {current} → {target} ({reason})", s)

    # ------------------------------------------------------------------ 5. DOWNSHIFTED / RESTORING
    if s.model is None or not ladder.allowed(s.model):
        return finish("hold", None, f"{s.status.lower()} on {s.model!r}, which is no longer on the ladder; "
                      "nothing written", s)
    if reason:
        if s.status == "RESTORING":
            s = dataclasses.replace(s, status="DOWNSHIFTED", since=now, reason=reason, trips=s.trips + 1,
                                    last_trip_at=now)
            return finish("none", s.model, f"re-tripped ({reason}) while restoring: stays on {s.model}, "
                          f"dwell grows to {_span(policy.dwell_s(s.trips))}", s)
        if s.reason != reason:
            s = dataclasses.replace(s, reason=reason)
        return finish("none", s.model, f"stays downshifted on {s.model} ({reason})", s)

    if s.status == "DOWNSHIFTED":
        s = dataclasses.replace(s, status="RESTORING", since=now)
        notes.append("causes cleared")
    target = ladder.step_up(s.model, toward=s.baseline) if s.baseline and ladder.allowed(s.baseline) else None
    if target is None:  # at the baseline (not yet read back), or the baseline left the ladder
        if observed is not None and observed.value == s.model:
            s = dataclasses.replace(s, status="NORMAL", since=now, reason="", baseline=s.model)
            return finish("none", s.model, f"restore complete: stays on {s.model}", s)
        return finish("hold", None, f"restoring: waiting to read back {s.model}", s)
    if observed is None:
        return finish("hold", target, f"restore to {target} waits: current value not read", s)
    if policy.track_budget and not sp.known:
        return finish("hold", target, f"restore to {target} waits: never upshift on unknown data ({sp.why_unknown})",
                      s)
    start = max(t for t in (s.last_switch_at, s.last_trip_at, s.since) if t is not None)
    dwell = policy.dwell_s(max(s.trips, 1))
    remaining = dwell - (now - start).total_seconds()
    if remaining > 0:
        return finish("hold", target, f"restore to {target} waits: dwell {_span(remaining)} of {_span(dwell)} left",
                      s)
    if policy.require_probe and inputs.probe_ok is not True:
        return finish("hold", target, f"restore to {target} waits: probe of {target} "
                      + ("failed" if inputs.probe_ok is False else "not yet run"), s)
    if cap_text:
        return finish("hold", target, f"restore to {target} blocked: {cap_text}", s)
    s = dataclasses.replace(s, model=target, last_switch_at=now, switches=recent + (now,))
    return finish("restore", target, f"restore {state.model} → {target}"
                  + (" (baseline)" if target == s.baseline else f" (on the way to {s.baseline})"), s)
