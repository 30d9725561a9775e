"""Drill: two days of realistic failures → draft pull requests, then next-day updates.

Healer runs in the local Functions host stand-in; it reads the Log Analytics stand-in with LogsQueryClient (HTTPS,
managed-identity token), writes to the GitHub stand-in (real bare git repository) with githubkit, and asks the
chat-completions stand-in as Azure OpenAI with an Entra token. The seeded day has several root causes across
roles and languages, noisy ids, sampling, one prompt-injection message and one secret in a message.
Day 1 is run through POST /api/errors/run (queue → worker), day 2 by firing the daily timer.
The model proposes a code change for every group; the one that applies cleanly must arrive only as a patch file in
Healer's triage folder and a fenced diff in the PR body, never as a commit to source on the branch.
Day 2 adds what happens around a deployment: a human merges the pricing fix, build 97 (a tagged commit) is deployed
to production two hours into the day and ships it, and the same deploy introduces a new error; the model endpoint
answers 429 to a storm of calls that the downshift healer acted on. Expected: the pricing PR is marked fixed (its
rate fell), the new group's PR names commit and deploy and ranks first, the storm is one dependency group linked to
the downshift action.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import secrets
import time
import uuid

from drill.host import start_healer
from drill.timeline import Timeline
from standins.github import start_github
from standins.log_analytics import start_log_analytics
from standins.openai_api import start_openai
from standins.stack import LocalAzure
from tests.errors import synth

OWNER, REPO = "contoso", "shop"
WORKSPACE = "11111111-2222-3333-4444-555555555555"
TRIAGE = ".healer/errors/"
PRICING_PATCH, ANSWER = synth.PRICING_PATCH, synth.PRICING_ANSWER


def _seed_day(la, start: dt.datetime, seed: int, build_line: int, *, extras: bool, store: bool = True) -> list:
    rows = synth.day_of_rows("workspace", start, 3000, seed, build_line=build_line)
    if extras:
        rng = random.Random(seed + 1)
        rows.append(synth.exception_row("workspace", start + dt.timedelta(hours=3), synth.CAUSES[1], rng,
                                        message=synth.INJECTION, item_count=300))
        rows.append(synth.exception_row("workspace", start + dt.timedelta(hours=4), synth.CAUSES[4], rng,
                                        message=f"Cannot open database: {synth.SECRET_CONN}", item_count=2000))
    if store:
        la.seed("AppExceptions", rows)
    return rows




def checkout_stack(line: int, instance: str) -> str:
    return ("Traceback (most recent call last):\n"
            f'  File "/tmp/{instance}/app/checkout.py", line {line}, in total_with_tax\n'
            '    rate = RATES[cart["currency"]]\n'
            "KeyError: 'currency'")


NEW_IN_97 = synth.Cause("checkout-currency", "KeyError", "KeyError at total_with_tax", ("pricing-py",),
                        ("POST /checkout",), 0.0, lambda r: "'currency'", checkout_stack, "python")
CHECKOUT_97 = 'RATES = {"EUR": 0.2}\n\n\ndef total_with_tax(cart):\n    rate = RATES[cart["currency"]]\n' \
              '    return cart["total"] * (1 + rate)\n'


def _day2_extras(la, gh, start: dt.datetime, deploy_at: dt.datetime, rows: list[dict]) -> tuple[str, int, int]:
    """Build 97 (tagged, deployed at `deploy_at`) ships the pricing fix and a new error; a 429 storm follows.
    Day 2's pricing rows after the deploy are thinned to 5 %. Returns (sha of 97, new-group rows, storm rows)."""
    sha97 = gh.commit(OWNER, REPO, {"app/checkout.py": CHECKOUT_97}, tag="97", message="build 97")
    gh.deployment(OWNER, REPO, sha97, ref="97", description="build 97", environment="production",
                  at=deploy_at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    rng = random.Random(97)
    kept = [r for r in rows if not (r["ExceptionType"] == "ZeroDivisionError"
                                    and dt.datetime.fromisoformat(r["TimeGenerated"]) >= deploy_at
                                    and rng.random() > 0.05)]
    new = [synth.exception_row("workspace", deploy_at + dt.timedelta(minutes=6, seconds=41 * i), NEW_IN_97, rng,
                               version="97") for i in range(400)]
    storm = synth.throttle_storm("workspace", deploy_at + dt.timedelta(hours=3), 600, 98)
    la.seed("AppExceptions", kept + new)
    la.seed("AppDependencies", storm)
    return sha97, len(new), len(storm)


def _wait_for(predicate, deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


def run(stack: LocalAzure) -> Timeline:
    tl = Timeline("errors: a day of exceptions → draft PRs, next day updates")
    servers = []
    try:
        la = start_log_analytics(stack.workdir, stack.ca, stack.secret)
        servers.append(la)
        gh = start_github(stack.workdir, "ghs_" + secrets.token_hex(18))
        servers.append(gh)
        ai = start_openai(stack.workdir, token_secret=stack.secret)
        servers.append(ai)
        gh.create_repo(OWNER, REPO, dict(synth.SOURCES))
        ai.script(*[{"kind": "json", "content": ANSWER} for _ in range(16)])  # the same change proposed for every group
        base_before = gh.files(OWNER, REPO, "main")
        settings = {
            "HEALER_TABLE_PREFIX": "drille" + uuid.uuid4().hex[:6],
            "HEALER_POLICY": json.dumps({"version": 1, "default": "deny", "rules": [
                {"action": "errors.*", "resource": f"github:{OWNER}/{REPO}", "effect": "allow"}]}),
            "HEALER_ERRORS_SCHEDULE": "0 0 6 * * *",
            "HEALER_ERRORS_SCHEMA": "workspace", "HEALER_ERRORS_WORKSPACE_ID": WORKSPACE,
            "HEALER_ERRORS_LOGS_ENDPOINT": la.endpoint,
            "HEALER_ERRORS_GITHUB_API_URL": gh.url, "HEALER_ERRORS_GITHUB_REPOSITORY": f"{OWNER}/{REPO}",
            "HEALER_ERRORS_GITHUB_TOKEN": gh.token,
            "HEALER_ERRORS_LLM_PROVIDER": "azure", "HEALER_ERRORS_LLM_ENDPOINT": ai.url,
            "HEALER_ERRORS_LLM_MODEL": "gpt-4o-healer", "HEALER_ERRORS_TOP_N": "8",
        }
        now_hour = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
        day1 = (now_hour - dt.timedelta(hours=48), now_hour - dt.timedelta(hours=24))
        n1 = len(_seed_day(la, day1[0], 21, 88, extras=True))
        tl.add("telemetry", f"day 1: {n1} exception rows (6 root causes, 4 languages, 6 roles, noisy ids, 30% sampled, "
                            f"one prompt injection, one connection string with an account key)")
        healer = start_healer(stack, settings, name="healer-errors")
        try:
            with healer.client() as client:
                resp = client.post("/errors/run", json={"start": day1[0].isoformat(), "end": day1[1].isoformat(),
                                                        "by": "drill"})
                tl.add("operator", f"POST /api/errors/run for day 1 → HTTP {resp.status_code}")
                tl.check(resp.status_code == 202, "run request accepted (202) and queued")
                drafted = _wait_for(lambda: len(gh.pulls()) >= 7, 90)
                pulls = gh.pulls()
                tl.add("github", f"{len(pulls)} pull request(s): " + "; ".join(
                    f"#{p['number']} {p['title'][:70]}" for p in sorted(pulls, key=lambda p: p["number"])))
                # Six seeded causes, and the stackless SqlException's "Cannot open database" rows are a root cause of
                # their own (a connection failure, not the timeout): grouped by message template, not merged.
                tl.check(drafted and len(pulls) == 7, "seven draft PRs opened, one per root cause (top 8): the six "
                                                      "causes and the database connection failure")
                tl.check(all(p["draft"] and p["state"] == "open" and p["head"]["ref"].startswith("healer/errors/")
                             for p in pulls), "every PR is a draft on healer/errors/<short-fingerprint>")
                tl.check(len({p["head"]["ref"] for p in pulls}) == len(pulls), "one PR per fingerprint")
                triage_ok = all(any(path.startswith(".healer/errors/") and "## Counts per hour" in text
                                    for path, text in gh.files(OWNER, REPO, p["head"]["ref"]).items()) for p in pulls)
                tl.check(triage_ok, "each branch holds a triage file with counts per hour, stack and KQL")
                tl.check(all("## Diagnosis" in p["body"] and "Drafted by a language model" in p["body"]
                             for p in pulls), "each PR carries a model diagnosis (Azure OpenAI, Entra token)")
                with_patch = [p for p in pulls if any(
                    path.startswith(TRIAGE) and path.endswith(".proposed-fix.patch")
                    for path in gh.files(OWNER, REPO, p["head"]["ref"]))]
                pricing = [p for p in pulls if "ZeroDivisionError" in p["title"]]
                tl.add("github", f"{len(with_patch)} PR(s) carry a proposed-fix patch file: "
                                 + ", ".join(f"#{p['number']}" for p in with_patch))
                tl.check(len(with_patch) == 1 and with_patch == pricing,
                         "only the change that applies cleanly to the fetched files (pricing) is kept")
                tl.check(bool(pricing) and "Proposed change (machine-drafted, unreviewed)" in pricing[0]["body"]
                         and "```diff" in pricing[0]["body"] and "git apply" in pricing[0]["body"],
                         "the PR body shows it as a fenced diff, marked machine-drafted and unreviewed, with "
                         "instructions to apply it locally")
                tl.check(bool(pricing) and gh.files(OWNER, REPO, pricing[0]["head"]["ref"])["app/pricing.py"]
                         == base_before["app/pricing.py"],
                         "the model's change is NOT committed as source on the branch (nothing runs it in CI)")

                writes_before = len(gh.requests())
                client.post("/errors/run", json={"start": day1[0].isoformat(), "end": day1[1].isoformat(),
                                                 "by": "drill"})
                rerun_done = _wait_for(lambda: _audited_runs(client) >= 2, 60)
                new_writes = [r for r in gh.requests()[writes_before:] if r["method"] != "GET"]
                tl.add("operator", f"re-ran the day-1 window → {len(new_writes)} GitHub write(s)")
                tl.check(rerun_done and not new_writes, "re-running the same window changes nothing")

                merged_at = day1[1] + dt.timedelta(hours=1)
                gh.merge(OWNER, REPO, pricing[0]["number"], at=merged_at.strftime("%Y-%m-%dT%H:%M:%SZ"))
                tl.add("human", f"merged the pricing fix #{pricing[0]['number']} at {merged_at:%H:%M} (day 2)")
                deploy_at = day1[1] + dt.timedelta(hours=2)
                rows2 = _seed_day(la, day1[1], 22, 97, extras=False, store=False)
                sha97, n_new, n_storm = _day2_extras(la, gh, day1[1], deploy_at, rows2)
                tl.add("pipeline", f"build 97 (tag 97, {sha97[:12]}) deployed to production at {deploy_at:%H:%M}")
                bases = [base_before, gh.files(OWNER, REPO, "main")]  # the base as humans left it
                Settings = __import__("shared.config", fromlist=["Settings"]).Settings
                __import__("shared.audit", fromlist=["record"]).record(
                    Settings({**stack.env(), **settings}), healer="downshift", outcome="acted",
                    resource="/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ai/providers/"
                             "Microsoft.Web/sites/chat-web", subject="*",
                    reason="429 ratio alert: gpt-4o to gpt-4o-mini", now=deploy_at + dt.timedelta(hours=3, minutes=9))
                tl.add("telemetry", f"day 2: {len(rows2)} exception rows from build 97, {n_new} rows of a new "
                                    f"KeyError from 6 min after the deploy, a storm of {n_storm} model calls answered "
                                    "429 (and the downshift healer's switch to gpt-4o-mini)")
                import httpx
                fired = httpx.post(f"http://127.0.0.1:{healer.server.ports['http']}/admin/functions/errors_daily",
                                   headers={"x-functions-key": healer.key}, timeout=300)
                tl.add("host", f"timer errors_daily fired → HTTP {fired.status_code}")
                pulls2 = gh.pulls()
                updated = [p for p in pulls2 if p["comments"] and p["number"] != pricing[0]["number"]]
                open_per_branch: dict[str, int] = {}
                for p in pulls2:
                    if p["state"] == "open":
                        open_per_branch[p["head"]["ref"]] = open_per_branch.get(p["head"]["ref"], 0) + 1
                tl.add("github", f"after day 2: {len(pulls2)} PR(s), {len(updated)} updated with a comment")
                tl.check(len(updated) >= 4 and all("Healer update for" in p["comments"][-1]["body"] for p in updated),
                         "next day: existing PRs got an updated triage file and a comment")
                tl.check(all("<!-- healer-errors:triage sha256=" in p["comments"][-1]["body"] for p in updated),
                         "each update comment carries the hash of the triage it reports (a lost comment is "
                         "re-posted by the next run)")
                # a merged fix whose rate fell: marked fixed
                fixed_pr = next(p for p in pulls2 if p["number"] == pricing[0]["number"])
                short = fixed_pr["head"]["ref"].rsplit("/", 1)[1]
                triage = gh.files(OWNER, REPO, fixed_pr["head"]["ref"]).get(f"{TRIAGE}{short}.md", "")
                fell = next((line for line in triage.splitlines() if line.startswith("- rate ")), "")
                tl.add("github", f"pricing #{fixed_pr['number']}: {fell[2:] or 'no effect recorded'}")
                tl.check("- Status: **fixed**" in triage and "before build 97" in triage
                         and "effect of this merged fix" in fixed_pr["comments"][-1]["body"],
                         "the merged pricing fix is marked fixed in its triage file: its rate fell by 80 % or more "
                         "after build 97 shipped it")
                tl.check(not [p for p in pulls2 if p["head"]["ref"] == fixed_pr["head"]["ref"]
                              and p["state"] == "open"], "no regression PR for a fix that worked")
                # the deploy that introduced a group
                new_prs = [p for p in pulls2 if "KeyError" in p["title"]]
                body = new_prs[0]["body"] if new_prs else ""
                tl.add("github", f"new group: {new_prs[0]['title'][:90] if new_prs else 'none'}")
                tl.check(len(new_prs) == 1 and f"commit `{sha97[:12]}`, deployed as version `97`" in body
                         and "appeared 6 min after build 97" in body and "reached production" in body,
                         "build 97's new error: its PR names the deployed commit and the deploy (6 min after)")
                tl.check("Files read with git (shallow)" in body and "`app/checkout.py`" in body,
                         "its frames were read from a shallow git fetch of that commit")
                first = _first_drafted(client)
                tl.check(first is not None and "KeyError" in first,
                         "new-after-deploy ranks first in the day's drafting order")
                # the 429 storm: one dependency group linked to the downshift action
                storm_prs = [p for p in pulls2 if p["title"].startswith("[healer] Throttled (429)")]
                tl.add("github", f"storm: {storm_prs[0]['title'][:100] if storm_prs else 'no PR'}")
                tl.check(len(storm_prs) == 1 and not [p for p in pulls2 if "(429)" in p["title"]
                                                      and p not in storm_prs],
                         "the 429 storm from the model endpoint is one dependency group (one PR)")
                tl.check(bool(storm_prs) and "the downshift healer acted on chat-web" in storm_prs[0]["body"],
                         "its PR links the downshift healer's switch on the same app")
                tl.check(all(v == 1 for v in open_per_branch.values()), "still one open PR per fingerprint")

            wire = gh.sent_text()
            branch_text = "\n".join(text for p in gh.pulls() for text in
                                    gh.files(OWNER, REPO, p["head"]["ref"]).values())
            model_text = json.dumps(ai.requests())
            key = synth.SECRET_CONN.split("AccountKey=")[1].split(";")[0]
            tl.check(all(key not in t and key[:16] not in t for t in (wire, branch_text, model_text)),
                     "the account key appears nowhere outside Healer (GitHub requests, branches, model prompts)")
            tl.check("AccountKey=<redacted>" in wire, "the secret's message reached GitHub redacted")
            injected = [r for r in ai.requests() if synth.INJECTION[:40] in json.dumps(r["body"])]
            tl.check(bool(injected) and all(synth.INJECTION[:40] not in r["body"]["messages"][0]["content"]
                                            for r in injected),
                     "the prompt injection reached the model only as evidence, never as instructions")
            tl.check(not any(path.startswith(".github/") for p in gh.pulls()
                             for path in gh.files(OWNER, REPO, p["head"]["ref"])),
                     "no branch touches .github/ (the model has no tools; its output only lands in drafts)")
            content_writes = [r["path"].split("/contents/", 1)[1] for r in gh.requests()
                              if r["method"] == "PUT" and "/contents/" in r["path"]]
            outside = lambda files: {k: v for k, v in files.items() if not k.startswith(TRIAGE)}  # noqa: E731
            tl.check(bool(content_writes) and all(w.startswith(TRIAGE) for w in content_writes)
                     and all(outside(gh.files(OWNER, REPO, p["head"]["ref"])) in [outside(b) for b in bases]
                             for p in gh.pulls()),
                     f"Healer wrote only under {TRIAGE} ({len(content_writes)} file write(s)); every branch is "
                     "the base outside it")
            tl.check(gh.files(OWNER, REPO, "main") == bases[-1],
                     "the base branch is as humans left it (their merge, build 97): Healer never merges")
        finally:
            healer.stop()
    except Exception as exc:  # a crash is a failed drill, reported on the timeline
        tl.check(False, f"scenario crashed: {type(exc).__name__}: {str(exc)[:300]}")
    finally:
        for s in reversed(servers):
            s.stop()
    return tl


def _first_drafted(client) -> str | None:
    """Title of the first group the timer run drafted (the audit lists newest first)."""
    records = client.get("/audit", params={"healer": "errors", "limit": 500}).json()["records"]
    runs = [r for r in records if str(r.get("reason", "")).startswith("timer run over")]
    if not runs:
        return None
    drafted = runs[0]["details"].get("drafted") or []
    by_fp = {r["details"].get("fingerprint"): r["details"].get("title") for r in records if r["details"].get("title")}
    return by_fp.get(drafted[0]["fingerprint"]) if drafted else None


def _audited_runs(client) -> int:
    records = client.get("/audit", params={"healer": "errors", "outcome": "recorded", "limit": 500}).json()["records"]
    return sum(1 for r in records if "manual run over" in r["reason"])
