"""The rollback decision: a pure function of (alert, observed app, Healer's record of the app, mode, policy, now).

A slot swap is a toggle, so "swap on alert" would re-promote the bad build on every duplicate, late or Resolved
delivery. The rule here is Flagger's: a rollback *sticks*. Healer swaps only when

* production holds a build that arrived by a swap from the configured slot (slotSwapStatus), after the build
  that the slot now holds — the last known good — and neither slot was deployed to since that swap;
* the alert fired after that swap (a swap after the alert means the alert is about something else);
* staging exists, runs, and differs from production; nothing is half-done (swap with preview pending);
* the app is not latched by an earlier rollback and is under its rollback budget for the window.

After a rollback the app is latched until a new deployment is seen or an operator re-arms it. Independently of the
latch, every build Healer rolled away from is remembered (`AppState.bad_builds`, kept across re-arms and latch
releases): Healer never swaps a remembered bad build into production until an operator forgets it explicitly.
"""
from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from healers.rollback.attribution import ConfigChange, suspects
from shared.controls import Mode
from shared.policy import PolicyDecision

Action = Literal["swap", "skip", "refuse", "ask", "dry-run", "killed", "freeze"]
OnChange = Literal["ask", "skip"]


DEPLOY_SUCCESS = 4  # Kudu DeployStatus: 0 pending, 1 building, 2 deploying, 3 failed, 4 success


class DeploymentNote(BaseModel):
    """A deployment that did not succeed (failed or still running): audited, never counted as a deployment."""
    id: str
    status: int | None = None
    at: dt.datetime | None = None

    @property
    def label(self) -> str:
        return {3: "failed"}.get(self.status, "in progress" if self.status in (0, 1, 2) else f"status {self.status}")


class SlotView(BaseModel):
    exists: bool = True
    state: str = "Running"
    build: str | None = None
    last_deployed_at: dt.datetime | None = None  # the newest SUCCESSFUL deployment only
    last_deployment_id: str | None = None
    target_swap_slot: str | None = None
    not_counted: list[DeploymentNote] = Field(default_factory=list)  # newest unsuccessful deployments (bounded)


def successful(status: int | None, complete: bool | None = None) -> bool:
    """Only a successful deployment (status 4 / complete) counts as a deployment."""
    return status == DEPLOY_SUCCESS


def deployment_history(deployments: list[DeploymentNote]) -> dict:
    """SlotView fields from a slot's deployments: only successful ones count as deployed; the newest five others
    are kept to be audited as failed / in progress."""
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    done = sorted((d for d in deployments if successful(d.status) and d.at), key=lambda d: d.at or epoch)
    others = sorted((d for d in deployments if not successful(d.status)), key=lambda d: d.at or epoch, reverse=True)
    return {"last_deployed_at": done[-1].at if done else None, "last_deployment_id": done[-1].id if done else None,
            "not_counted": others[:5]}


def uncounted_since(obs: Observed, since: dt.datetime | None) -> list[str]:
    """Descriptions of the unsuccessful deployments after `since` (what the audit says was not counted)."""
    out = []
    for name, view in (("production", obs.production), ("slot", obs.slot)):
        for note in view.not_counted:
            if since is None or (note.at and note.at > since):
                out.append(f"{name} deployment {note.id[:60]} at {_fmt(note.at)} {note.label}: not counted")
    return out


class SwapStatus(BaseModel):
    at: dt.datetime
    source: str
    destination: str


class Observed(BaseModel):
    production: SlotView
    slot: SlotView
    last_swap: SwapStatus | None = None


class Latch(BaseModel):
    good: str
    bad: str
    at: dt.datetime
    incident: str


MAX_BAD_BUILDS = 50


class BadBuild(BaseModel):
    """A build Healer rolled away from, and why. Kept across re-arms and latch releases."""
    at: dt.datetime
    incident: str
    reason: str = Field("", max_length=500)
    replaced_by: str | None = None


class AppState(BaseModel):
    """What Healer remembers about one app (persisted in the ops table)."""
    latch: Latch | None = None
    rollbacks: list[dt.datetime] = Field(default_factory=list)
    escalated: str | None = None
    frozen: str | None = None  # "freeze instead of rollback": no swap into production until a human re-arms
    bad_builds: dict[str, BadBuild] = Field(default_factory=dict)


def remember_rollback(app: AppState, *, good: str, bad: str, at: dt.datetime, incident: str, reason: str,
                      latch: bool = True) -> AppState:
    """The app after Healer rolled production away from `bad` (pure: returns a new state).

    The bad build is remembered beyond the latch; the record is bounded to the newest MAX_BAD_BUILDS builds."""
    bad_builds = {**app.bad_builds, bad: BadBuild(at=at, incident=incident, reason=reason[:500], replaced_by=good)}
    if len(bad_builds) > MAX_BAD_BUILDS:
        bad_builds = dict(sorted(bad_builds.items(), key=lambda kv: kv[1].at)[-MAX_BAD_BUILDS:])
    return app.model_copy(update={
        "bad_builds": bad_builds,
        "latch": Latch(good=good, bad=bad, at=at, incident=incident) if latch else app.latch,
        "rollbacks": [r for r in app.rollbacks if at - r < dt.timedelta(days=7)] + [at] if latch else app.rollbacks})


def forget_bad_build(app: AppState, build: str) -> AppState:
    """The app after an operator cleared one remembered bad build (pure)."""
    return app.model_copy(update={"bad_builds": {b: v for b, v in app.bad_builds.items() if b != build}})


class Decision(BaseModel):
    action: Action
    reason: str
    good: str | None = None
    bad: str | None = None
    clear_latch: bool = False  # the latch was released by a new deployment seen in `observed`
    tell_human: bool = False   # skipped for a reason only a human can clear (e.g. a half-done swap with preview)
    suspects: list[ConfigChange] = Field(default_factory=list)  # configuration changes between swap and alert


def _fmt(t: dt.datetime | None) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else "?"


def new_deployment_since_latch(latch: Latch, obs: Observed) -> str | None:
    """A deployment after the latch re-arms the app. Returns why, or None."""
    prod, slot = obs.production, obs.slot
    if prod.build and prod.build not in (latch.good, latch.bad):
        return f"production now runs {prod.build}, a build seen after the rollback"
    for name, view in (("production", prod), ("slot", slot)):
        if view.last_deployed_at and view.last_deployed_at > latch.at:
            return f"{name} was deployed at {_fmt(view.last_deployed_at)}, after the rollback"
    return None


def decide(*, fired_at: dt.datetime, slot_name: str, obs: Observed, app: AppState, mode: Mode,
           policy: PolicyDecision, approved: bool, max_rollbacks: int, window: dt.timedelta,
           max_build_age: dt.timedelta, now: dt.datetime, changes: list[ConfigChange] | None = None,
           dependency: str | None = None, on_config_change: OnChange = "ask", freeze: bool = False) -> Decision:
    prod, slot = obs.production, obs.slot
    clear_latch = False

    # 1. Healer's own memory first: escalations and latches stop everything automatic.
    if app.frozen:
        return Decision(action="skip", reason=f"frozen ({app.frozen[:300]}): no swap into production until a human "
                                              f"re-arms the app")
    if app.escalated:
        return Decision(action="skip", reason=f"escalated earlier ({app.escalated}); a human must re-arm the app")
    if app.latch:
        why = new_deployment_since_latch(app.latch, obs)
        if not why:
            return Decision(action="skip", reason=(
                f"latched since rollback at {_fmt(app.latch.at)} to {app.latch.good} (from {app.latch.bad}); "
                f"re-arm with POST /api/rollback/rearm or deploy a new build"))
        clear_latch = True
    recent = [t for t in app.rollbacks if now - t < window]
    if len(recent) >= max_rollbacks:
        return Decision(action="skip", clear_latch=clear_latch, reason=(
            f"rollback budget spent: {len(recent)} in the last {int(window.total_seconds() // 60)} min "
            f"(max {max_rollbacks})"))

    # 2. The observed state must show a bad build that arrived by swap after the good one.
    def skip(reason: str) -> Decision:
        return Decision(action="skip", reason=reason, clear_latch=clear_latch)

    if prod.target_swap_slot or slot.target_swap_slot:
        return Decision(action="skip", clear_latch=clear_latch, tell_human=True, reason=(
            f"a swap with preview is pending (targetSwapSlot={prod.target_swap_slot or slot.target_swap_slot}): "
            f"production may be serving a half-swapped configuration; complete or cancel it, Healer will not swap"))
    if not slot.exists:
        return skip(f"slot {slot_name} does not exist: nothing to roll back to")
    if slot.state.lower() != "running":
        return skip(f"slot {slot_name} is {slot.state}: it cannot take production traffic")
    if not prod.build or not slot.build:
        return skip("cannot read the build marker of " + ("production" if not prod.build else slot_name))
    if prod.build == slot.build:
        return skip(f"{slot_name} and production both run {prod.build}: a swap would change nothing")
    swap = obs.last_swap
    if swap is None or swap.destination.lower() != "production" or swap.source.lower() != slot_name.lower():
        return skip(f"production did not arrive by a swap from {slot_name} (slotSwapStatus: "
                    f"{'none' if swap is None else f'{swap.source}->{swap.destination}'})")
    if swap.at > fired_at:
        return skip(f"superseded: a swap at {_fmt(swap.at)} came after the alert fired at {_fmt(fired_at)}; "
                    f"re-evaluated, not acting on a stale alert")
    if slot.last_deployed_at and slot.last_deployed_at > swap.at:
        return skip(f"{slot_name} holds a newer build ({slot.build}, deployed {_fmt(slot.last_deployed_at)} after "
                    f"the swap at {_fmt(swap.at)}), not the last known good")
    if prod.last_deployed_at and prod.last_deployed_at > swap.at:
        return skip(f"production was deployed directly at {_fmt(prod.last_deployed_at)}, after the swap: its build "
                    f"did not arrive by swap")
    if now - swap.at > max_build_age:
        return skip(f"production has run {prod.build} since {_fmt(swap.at)}, longer than the "
                    f"{int(max_build_age.total_seconds() // 60)} min rollback horizon; {slot_name} is too old to trust")
    if app.latch and slot.build == app.latch.bad:
        return skip(f"{slot_name} holds {slot.build}, a build Healer already rolled back from")
    remembered = app.bad_builds.get(slot.build)
    if remembered is not None:
        return Decision(action="skip", clear_latch=clear_latch, tell_human=True, reason=(
            f"{slot_name} holds {slot.build}, a build Healer already rolled back from at {_fmt(remembered.at)} "
            f"({remembered.reason[:200] or 'incident ' + remembered.incident}); it is never swapped back in "
            f"automatically: clear it with POST /api/rollback/rearm {{\"forgetBuild\": \"{slot.build}\"}}"))

    # 3. Attribution: is the swapped build really to blame?
    if dependency:
        return Decision(action="skip", clear_latch=clear_latch, tell_human=True, reason=(
            f"dependency outage suspected: {dependency}; rolling back {prod.build} would not help"))
    suspect = suspects(changes or [], swap.at, fired_at)
    if suspect and not approved and not mode.killed and policy.effect != "deny":
        listed = "; ".join(c.describe() for c in suspect[:5]) + (f"; and {len(suspect) - 5} more"
                                                                  if len(suspect) > 5 else "")
        reason = (f"suspect configuration change {listed} — after the swap at {_fmt(swap.at)} that brought "
                  f"{prod.build} and before the alert at {_fmt(fired_at)}: not swapping code back to {slot.build}")
        return Decision(action=on_config_change, reason=reason, good=slot.build, bad=prod.build,
                        clear_latch=clear_latch, tell_human=on_config_change == "skip", suspects=suspect)

    # 4. A rollback is warranted. An app whose releases carry irreversible data migrations freezes instead.
    if freeze and not mode.killed and mode.dry_run:  # freezing changes Healer's state and the controls record
        return Decision(action="dry-run", good=slot.build, bad=prod.build, clear_latch=clear_latch,
                        reason=f"would freeze instead of rollback ({prod.build} arrived by swap at {_fmt(swap.at)}; "
                               f"no swap of {slot.build} back) — {mode.reason}")
    if freeze and not mode.killed:
        return Decision(action="freeze", good=slot.build, bad=prod.build, clear_latch=clear_latch, tell_human=True,
                        reason=(f"freeze instead of rollback: {prod.build} (arrived by swap at {_fmt(swap.at)}) may "
                                f"carry irreversible data migrations, so Healer does not swap {slot.build} back; "
                                f"production is frozen (no swap into it) and a human decides"))

    # 5. Now the safety gates.
    plan = f"swap {slot_name} ({slot.build}, last known good) into production (now {prod.build}, arrived by swap at " \
           f"{_fmt(swap.at)}, alert fired {_fmt(fired_at)})"

    def gated(action: Action, reason: str) -> Decision:
        return Decision(action=action, reason=reason, good=slot.build, bad=prod.build, clear_latch=clear_latch)

    if mode.killed:
        return gated("killed", f"would {plan}, but {mode.reason}")
    if policy.effect == "deny":
        return gated("refuse", f"policy denies: {policy.reason}")
    if policy.effect == "ask" and not approved:
        return gated("ask", f"approval needed to {plan} ({policy.reason})")
    if mode.dry_run:
        return gated("dry-run", f"would {plan} ({mode.reason})")
    return gated("swap", plan[0].upper() + plan[1:])


def verify(*, obs: Observed, good: str, health: str | None) -> str | None:
    """After a swap: None when production runs the good build (and is healthy), else what is wrong."""
    if obs.production.build != good:
        return f"production runs {obs.production.build}, expected {good} after the swap"
    if health is not None and health != "ok":
        return f"health check failed: {health}"
    return None
