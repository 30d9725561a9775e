"""`healer`: operate a Healer deployment from a terminal — see, approve, stop.

    healer status                         health, controls, pending approvals, today's decisions
    healer approvals [--healer H]         pending approvals (what, where, why, time left)
    healer approve ID --reason TEXT       approve one (Healer re-checks live state before acting)
    healer reject ID --reason TEXT
    healer audit --since 7d [--healer --outcome --resource] [--json]
    healer kill on|off [--resource ID]    kill switch, global or for one resource
    healer dry-run on|off [--resource ID]
    healer rearm RESOURCE                 clear a rollback latch / escalation
    healer release RESOURCE --tenant T    release a HELD downshift (app, tenant)
    healer config check [FILE]            validate settings offline, as the app does at start
    healer wait REGISTRY REPO --tag T     open (or join) a replication wait; exit 0 once pullable everywhere

Every command takes --json (stable output for scripts). Exit codes: 0 ok, 1 Healer refused,
2 usage, 3 authentication, 4 not found / conflict / gone, 5 unreachable or server error,
6 invalid configuration.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Annotated, Any
from collections.abc import Callable

import typer
from rich.console import Console
from rich.table import Table

from cli.client import INVALID_CONFIG, NOT_FOUND, USAGE, Api, CliError, Target, operator_name, resolve_url

HEALERS = ("rollback", "downshift", "replication", "errors")
_HELP = __doc__.split("\n\n", 1)[0] + "\n\n\b\n" + __doc__.split("\n\n", 1)[1].replace("\n\nEvery", "\n\nEvery")
app = typer.Typer(help=_HELP, no_args_is_help=True, add_completion=False, rich_markup_mode=None)
config_app = typer.Typer(help="Check Healer settings offline.", no_args_is_help=True)
app.add_typer(config_app, name="config")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


class State:
    url: str | None = None
    key: str | None = None
    operator_key: str | None = None
    audience: str | None = None
    as_json: bool = False


state = State()


@app.callback()
def _global(url: Annotated[str | None, typer.Option(help="Healer API base URL (or HEALER_URL, or azd env).")] = None,
            key: Annotated[str | None, typer.Option(envvar="HEALER_KEY", help="Function key.", show_default=False)] = None,
            operator_key: Annotated[str | None, typer.Option(envvar="HEALER_OPERATOR_KEY", show_default=False,
                                                                help="Operator key (function-key mode).")] = None,
            audience: Annotated[str | None, typer.Option(envvar="HEALER_AUDIENCE",
                                                            help="Entra ID audience of Healer's app registration.")] = None,
            as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
            version: Annotated[bool, typer.Option("--version", help="Print the CLI's version and exit.",
                                                  is_eager=True, callback=lambda v: _print_version(v))] = False) -> None:
    state.url, state.key, state.operator_key, state.audience, state.as_json = url, key, operator_key, audience, as_json


def _print_version(wanted: bool) -> None:
    if wanted:
        from shared.version import __version__
        print(__version__)
        raise typer.Exit(0)


def _api() -> Api:
    return Api(Target(resolve_url(state.url), state.key, state.operator_key, state.audience))


def _run(fn: Callable[[], Any]) -> None:
    """Run a command: one line on stderr and a documented exit code on failure."""
    try:
        fn()
    except CliError as exc:
        if state.as_json:
            print(json.dumps({"error": exc.message, "exitCode": exc.code}))
        else:
            err.print(f"healer: {exc.message}", markup=False)
        raise typer.Exit(exc.code) from None


def _emit(data: Any, render: Callable[[Any], None]) -> None:
    if state.as_json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        render(data)


def _safe(text: Any, limit: int = 120) -> str:
    """Untrusted text (alert descriptions, exception messages) for a terminal: no control sequences."""
    s = re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", str(text if text is not None else ""))
    return s if len(s) <= limit else s[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------- approvals

def pending_approvals(api: Api, healer: str | None = None) -> list[dict[str, Any]]:
    """Pending approvals across healers (or of one), newest first."""
    try:
        found = api.get("approvals").get("pending", [])
    except CliError as exc:
        if exc.code != NOT_FOUND:  # an older Healer without GET /api/approvals: ask each healer
            raise
        found = [a for h in HEALERS for a in api.get(f"approvals/{h}").get("pending", [])]
    found = [a for a in found if not healer or a.get("healer") == healer]
    return sorted(found, key=lambda a: a.get("requestedAt", ""), reverse=True)


def _time_left(expires: str | None) -> str:
    if not expires:
        return "?"
    try:
        left = dt.datetime.fromisoformat(expires) - dt.datetime.now(dt.UTC)
    except ValueError:
        return "?"
    if left.total_seconds() <= 0:
        return "expired"
    hours, rest = divmod(int(left.total_seconds()), 3600)
    return f"{hours}h{rest // 60:02d}m"


def _approvals_table(items: list[dict[str, Any]]) -> None:
    if not items:
        out.print("no pending approvals")
        return
    t = Table(show_lines=False)
    t.add_column("id", no_wrap=True, min_width=24)  # copied into `healer approve ID`: never wrapped
    for name in ("healer", "action", "resource", "why"):
        t.add_column(name)
    t.add_column("time left", no_wrap=True)
    for a in items:
        t.add_row(_safe(a.get("id"), 24), _safe(a.get("healer"), 12), _safe(a.get("action"), 24),
                  _safe(str(a.get("resource", "")).rsplit("/", 1)[-1], 40), _safe(a.get("reason"), 70),
                  _time_left(a.get("expiresAt")))
    out.print(t)


@app.command()
def approvals(healer: Annotated[str | None, typer.Option(help="Only this healer.")] = None) -> None:
    """List pending approvals."""
    def go() -> None:
        api = _api()
        items = pending_approvals(api, healer)
        _emit({"pending": items}, lambda d: _approvals_table(d["pending"]))
    _run(go)


def _decide(approval_id: str, decision: str, reason: str, by: str | None) -> None:
    api = _api()
    match = [a for a in pending_approvals(api) if a.get("id") == approval_id]
    if not match:
        raise CliError(f"no pending approval {approval_id}: it may be decided or expired already "
                       "(see `healer audit --outcome approved`)", NOT_FOUND)
    healer = match[0]["healer"]
    decided = api.post(f"approvals/{healer}/{approval_id}",
                       {"decision": decision, "by": operator_name(by), "note": reason})
    _emit(decided, lambda d: out.print(f"{d.get('status', decision)}: {d.get('action')} on "
                                       f"{_safe(d.get('resource'), 200)} by {_safe(d.get('decidedBy'), 80)}"))


@app.command()
def approve(approval_id: Annotated[str, typer.Argument(metavar="ID")],
            reason: Annotated[str, typer.Option(help="Why (recorded in the audit).")],
            by: Annotated[str | None, typer.Option(help="Who (function-key mode).")] = None) -> None:
    """Approve a pending action. Healer re-checks live state before acting."""
    _run(lambda: _decide(approval_id, "approve", reason, by))


@app.command()
def reject(approval_id: Annotated[str, typer.Argument(metavar="ID")],
           reason: Annotated[str, typer.Option(help="Why (recorded in the audit).")],
           by: Annotated[str | None, typer.Option(help="Who (function-key mode).")] = None) -> None:
    """Reject a pending action."""
    _run(lambda: _decide(approval_id, "reject", reason, by))


# ---------------------------------------------------------------------------------------------- audit

_SINCE = re.compile(r"^(\d{1,4})([mhd])$")


def parse_since(text: str, now: dt.datetime) -> dt.datetime:
    """`7d`, `12h`, `30m`, or an ISO date/time (UTC when no offset)."""
    m = _SINCE.match(text.strip())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        return now - {"m": dt.timedelta(minutes=n), "h": dt.timedelta(hours=n), "d": dt.timedelta(days=n)}[unit]
    try:
        at = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(f"--since {text!r}: use 7d, 12h, 30m or an ISO date like 2026-11-30", USAGE) from None
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at


def audit_records(api: Api, since: dt.datetime, now: dt.datetime, limit: int, **filters: str | None) -> list[dict]:
    """Audit records from `since` to now across days, newest first, at most `limit`."""
    if (now - since).days > 90:
        raise CliError("--since reaches past the 90-day audit retention; use a shorter window", USAGE)
    records: list[dict[str, Any]] = []
    day = now.date()
    while day >= since.date() and len(records) < limit:
        page = api.get("audit", day=day.isoformat(), limit=min(1000, limit - len(records)), **filters)
        records += [r for r in page.get("records", []) if r.get("at", "") >= since.isoformat()]
        day -= dt.timedelta(days=1)
    return records[:limit]


def _audit_table(records: list[dict[str, Any]]) -> None:
    if not records:
        out.print("no audit records in that window")
        return
    t = Table("at (UTC)", "healer", "outcome", "resource", "subject", "reason")
    for r in records:
        t.add_row(_safe(r.get("at", ""), 19).replace("T", " "), _safe(r.get("healer"), 12),
                  _safe(r.get("outcome"), 14), _safe(str(r.get("resource", "")).rsplit("/", 1)[-1], 30),
                  _safe(r.get("subject"), 20), _safe(r.get("reason"), 80))
    out.print(t)


@app.command()
def audit(since: Annotated[str, typer.Option(help="How far back: 7d, 12h, 30m or an ISO date.")] = "1d",
          healer: Annotated[str | None, typer.Option()] = None,
          outcome: Annotated[str | None, typer.Option()] = None,
          resource: Annotated[str | None, typer.Option()] = None,
          limit: Annotated[int, typer.Option(min=1, max=10000)] = 200) -> None:
    """The audit trail across days, newest first."""
    def go() -> None:
        now = dt.datetime.now(dt.UTC)
        records = audit_records(_api(), parse_since(since, now), now, limit, healer=healer, outcome=outcome,
                                resource=resource)
        _emit({"count": len(records), "records": records}, lambda d: _audit_table(d["records"]))
    _run(go)


# ---------------------------------------------------------------------------------------------- controls

def _switch(which: str, value: str, resource: str | None, reason: str, by: str | None) -> None:
    if value not in ("on", "off"):
        raise CliError(f"{which}: say on or off, not {value!r}", USAGE)
    field = "kill" if which == "kill" else "dryRun"
    body: dict[str, Any] = {field: value == "on", "by": operator_name(by), "reason": reason}
    if resource:
        body["scope"] = resource
    data = _api().post("controls", body)
    _emit(data, lambda d: out.print(f"{which} {value} for {_safe(d.get('scope') or resource or 'global', 200)}"))


@app.command()
def kill(value: Annotated[str, typer.Argument(metavar="on|off")],
         resource: Annotated[str | None, typer.Option(help="A resource id; omit for every healer.")] = None,
         reason: Annotated[str, typer.Option(help="Why (recorded).")] = "set with the healer CLI",
         by: Annotated[str | None, typer.Option()] = None) -> None:
    """Kill switch: stop every action (globally or for one resource)."""
    _run(lambda: _switch("kill", value, resource, reason, by))


@app.command("dry-run")
def dry_run(value: Annotated[str, typer.Argument(metavar="on|off")],
            resource: Annotated[str | None, typer.Option(help="A resource id; omit for every healer.")] = None,
            reason: Annotated[str, typer.Option(help="Why (recorded).")] = "set with the healer CLI",
            by: Annotated[str | None, typer.Option()] = None) -> None:
    """Dry-run: decide and record, never act (globally or for one resource)."""
    _run(lambda: _switch("dry-run", value, resource, reason, by))


@app.command()
def rearm(resource: Annotated[str, typer.Argument(metavar="RESOURCE")],
          reason: Annotated[str, typer.Option(help="Why (recorded).")] = "re-armed with the healer CLI",
          by: Annotated[str | None, typer.Option()] = None) -> None:
    """Clear an app's rollback latch or escalation."""
    _run(lambda: _emit(_api().post("rollback/rearm", {"resourceId": resource, "by": operator_name(by),
                                                      "reason": reason}),
                       lambda d: out.print(f"re-armed {_safe(resource, 200)}")))


@app.command()
def release(resource: Annotated[str, typer.Argument(metavar="RESOURCE")],
            tenant: Annotated[str, typer.Option(help="Tenant, or * for the whole app.")],
            reason: Annotated[str, typer.Option(help="Why (recorded).")] = "released with the healer CLI",
            by: Annotated[str | None, typer.Option()] = None) -> None:
    """Release a HELD downshift (app, tenant)."""
    _run(lambda: _emit(_api().post("downshift/release", {"resourceId": resource, "tenant": tenant,
                                                         "by": operator_name(by), "reason": reason}),
                       lambda d: out.print(f"released {_safe(tenant, 60)} on {_safe(resource, 200)}")))


# ---------------------------------------------------------------------------------------------- replication

def _wait_render(d: dict[str, Any]) -> None:
    out.print(f"{_safe(d.get('repository'), 200)}@{_safe(d.get('digest'), 80)}: {_safe(d.get('status'), 20)}")
    for region, r in sorted((d.get("regions") or {}).items()):
        lag = r.get("lagSeconds")
        out.print(f"  {_safe(region, 40):<16} {_safe(r.get('state') or '-', 16):<14} "
                  f"lag {'-' if lag is None else lag} s  {_safe(r.get('lastError') or '', 120)}")
    if d.get("failure"):
        out.print(f"  failure: {_safe(d['failure'], 300)}")


@app.command()
def wait(registry: Annotated[str, typer.Argument(metavar="REGISTRY")],
         repository: Annotated[str, typer.Argument(metavar="REPOSITORY")],
         digest: Annotated[str | None, typer.Option(help="The pushed digest.")] = None,
         tag: Annotated[str | None, typer.Option(help="The pushed tag (resolved at the login server).")] = None,
         timeout: Annotated[float, typer.Option(help="Give up polling after this many seconds.")] = 3600.0,
         poll: Annotated[float, typer.Option(help="Seconds between status polls.")] = 10.0) -> None:
    """Open (or join) the replication wait of a pushed image, then wait for its outcome: exit 0 when it is
    pullable in every required region, 1 for any other outcome (timed out, throttled, failed, tag race)."""
    def go() -> None:
        import time
        if not digest and not tag:
            raise CliError("give --digest, --tag or both", USAGE)
        api = _api()
        opened = api.post("replication/waits", {k: v for k, v in {"registry": registry, "repository": repository,
                                                                     "digest": digest, "tag": tag}.items() if v})
        query = {"registry": opened["registry"], "repository": opened["repository"], "digest": opened["digest"]}
        deadline = time.monotonic() + max(0.0, timeout)
        view = api.get("replication/status", **query)
        while view.get("status") in ("pending", "stalled") and time.monotonic() < deadline:
            time.sleep(max(0.2, min(poll, deadline - time.monotonic())))
            view = api.get("replication/status", **query)
        _emit(view, _wait_render)
        if view.get("status") != "ready":
            raise typer.Exit(1)
    _run(go)


# ---------------------------------------------------------------------------------------------- status

def _status_render(d: dict[str, Any]) -> None:
    health = d.get("health") or {}
    ok = health.get("status", "unknown")
    out.print(f"Healer {d['url']}  version {health.get('version', '?')}  health: {ok}")
    for p in health.get("problems", []) or []:
        out.print(f"  ! {_safe(p.get('setting'), 60)}: {_safe(p.get('problem') or p.get('message'), 160)}")
    c = d.get("controls") or {}
    out.print(f"controls: kill={'ON' if c.get('killed') else 'off'}  dry-run={'ON' if c.get('dry_run') else 'off'}"
              f"  ({_safe(c.get('reason'), 100)})")
    out.print(f"pending approvals: {d['pendingApprovals']}")
    counts = d.get("todayByOutcome") or {}
    out.print("today: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no decisions"))


@app.command()
def status() -> None:
    """Health, controls, pending approvals and today's decisions, at a glance."""
    def go() -> None:
        api = _api()
        try:
            health = api.get("health")
        except CliError as exc:
            if exc.code == NOT_FOUND:
                health = {"status": "unknown (no /api/health)"}
            elif exc.code == 5 and "503" in exc.message:
                health = {"status": "unhealthy", "detail": exc.message}
            else:
                raise
        now = dt.datetime.now(dt.UTC)
        today = audit_records(api, now.replace(hour=0, minute=0, second=0, microsecond=0), now, 1000)
        counts: dict[str, int] = {}
        for r in today:
            counts[r.get("outcome", "?")] = counts.get(r.get("outcome", "?"), 0) + 1
        data = {"url": api.target.url, "health": health, "controls": api.get("controls"),
                "pendingApprovals": len(pending_approvals(api)), "todayByOutcome": counts}
        _emit(data, _status_render)
    _run(go)


# ---------------------------------------------------------------------------------------------- config

@config_app.command("check")
def config_check(file: Annotated[Path | None, typer.Argument(help="local.settings.json, a JSON object, "
                                                                     "`az ... appsettings list -o json`, or NAME=value lines")] = None,
                 from_env: Annotated[bool, typer.Option("--from-env", help="Check this process's environment.")] = False) -> None:
    """Validate settings offline with the app's own validator (exit 6 when invalid)."""
    def go() -> None:
        import os

        from cli.configcheck import problems, read_settings_file
        if file is None and not from_env:
            raise CliError("give a settings FILE or --from-env", USAGE)
        try:
            values = dict(os.environ) if from_env else read_settings_file(file)  # type: ignore[arg-type]
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read {file}: {exc}", USAGE) from None
        found = problems(values)
        _emit({"valid": not found, "problems": found},
              lambda d: out.print("configuration is valid" if d["valid"] else "\n".join(
                  f"{_safe(p['setting'], 60)}: {_safe(p['problem'], 300)}" for p in d["problems"])))
        if found:
            raise typer.Exit(INVALID_CONFIG)
    _run(go)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
