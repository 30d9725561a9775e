"""The azd hooks (infra/hooks/healer_hooks.py) run as azd runs them: a subprocess with the azd environment's values
as variables, a recording fake `azd` first on PATH, and ARM / the Functions host / Microsoft Graph served by a
stand-in on 127.0.0.1 (standins/deploy_hooks.py)."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from standins.harness import free_port, scratch_dir, start_python_server

REPO = Path(__file__).resolve().parents[2]
HOOK = REPO / "infra" / "hooks" / "healer_hooks.py"
sys.path.insert(0, str(HOOK.parent))
import healer_hooks  # noqa: E402

APP = "func-healer-abc"
FUNCTIONS = ["rollback_alert", "rollback_worker", "downshift_alert", "downshift_budget", "replication_events"]
MONITOR = healer_hooks.AZURE_MONITOR_APP_ID

FAKE_AZD = """#!{python}
import json, os, sys
log = os.environ["FAKE_AZD_LOG"]
with open(log, "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "nested": os.environ.get("HEALER_HOOK_NESTED"),
                        "wire": os.environ.get("HEALER_WIRE_TRIGGERS")}}) + "\\n")
if sys.argv[1:3] == ["auth", "token"]:
    scope = sys.argv[sys.argv.index("--scope") + 1]
    print(json.dumps({{"token": "tok-" + scope.split("//")[-1].split("/")[0].split(":")[0], "expiresOn": "2099-01-01T00:00:00Z"}}))
elif sys.argv[1:2] == ["provision"]:
    sys.exit(int(os.environ.get("FAKE_AZD_PROVISION_RC", "0")))
elif sys.argv[1:3] == ["env", "get-values"]:
    ids = os.environ.get("FAKE_AZD_GROUPS", "ag-healer-rollback,ag-healer-downshift,ag-healer-budget").split(",")
    names = ["HEALER_ROLLBACK_ACTION_GROUP_ID", "HEALER_DOWNSHIFT_ACTION_GROUP_ID", "HEALER_BUDGET_ACTION_GROUP_ID"]
    print(json.dumps({{n: "/subscriptions/sub-1/resourceGroups/rg-healer/providers/Microsoft.Insights/actionGroups/" + i
                      if i else "" for n, i in zip(names, ids)}}))
"""


@pytest.fixture(scope="module")
def standin():
    work = scratch_dir("healer-hooks-")
    port = free_port()
    server = start_python_server("deploy-hooks", "standins.deploy_hooks", ["--port", str(port)], port, work)
    try:
        yield f"http://127.0.0.1:{port}", work
    finally:
        server.stop()


@pytest.fixture
def run(standin, tmp_path):
    base, _ = standin
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    azd = bin_dir / "azd"
    azd.write_text(FAKE_AZD.format(python=sys.executable))
    azd.chmod(azd.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "azd.jsonl"

    def configure(**state):
        state = {"app": APP, "functions": FUNCTIONS, "readyAfterPolls": 0, "servicePrincipals": {},
                 "graphForbidden": False, **state}
        httpx.post(f"{base}/_standin/configure", json=state).raise_for_status()

    def go(event: str, **env: str):
        full = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_AZD_LOG": str(log),
                "AZURE_SUBSCRIPTION_ID": "sub-1", "AZURE_RESOURCE_GROUP": "rg-healer", "AZURE_FUNCTION_APP_NAME": APP,
                "HEALER_API_BASE_URL": f"{base}/api", "HEALER_HOOK_ARM_ENDPOINT": base,
                "HEALER_HOOK_GRAPH_ENDPOINT": base, "HEALER_HOOK_TIMEOUT_SECONDS": "20",
                "HEALER_HOOK_POLL_SECONDS": "0.05", **env}
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(HOOK), event], env=full, capture_output=True, text=True,
                              timeout=60, cwd=str(REPO))
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        seen = httpx.get(f"{base}/_standin/requests").json()["requests"]
        return proc, calls, seen, time.monotonic() - started

    configure()
    go.configure = configure
    return go


def _argvs(calls):
    return [c["argv"] for c in calls]


def test_postdeploy_waits_for_the_deployed_functions_and_host_then_wires_once(run):
    run.configure(readyAfterPolls=3)
    proc, calls, seen, _ = run("postdeploy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lists = [r for r in seen if r["path"].endswith("/functions")]
    assert len(lists) >= 4, "the hook must poll until the functions are listed"
    assert all(r["authorization"] == "Bearer tok-127.0.0.1" and r["query"]["api-version"] == "2024-04-01"
               for r in lists)
    assert lists[0]["path"] == f"/subscriptions/sub-1/resourceGroups/rg-healer/providers/Microsoft.Web/sites/{APP}/functions"
    assert any(r["path"] == "/" for r in seen), "the host must answer before wiring"
    argvs = _argvs(calls)
    assert ["env", "set", "HEALER_WIRE_TRIGGERS", "true"] in argvs
    [provision] = [c for c in calls if c["argv"][0] == "provision"]
    assert provision["argv"] == ["provision", "--no-prompt"]
    assert provision["nested"] == "1" and provision["wire"] == "true"
    assert argvs.index(["env", "set", "HEALER_WIRE_TRIGGERS", "true"]) < argvs.index(["provision", "--no-prompt"])
    assert "wired:" in proc.stdout and "actionGroups/ag-healer-budget" in proc.stdout
    assert argvs[-1] == ["env", "get-values", "--output", "json"]


def test_once_wired_the_hooks_do_nothing(run):
    for event in ("postprovision", "postdeploy"):
        proc, calls, seen, _ = run(event, HEALER_WIRE_TRIGGERS="true")
        assert proc.returncode == 0 and calls == [] and seen == []
        assert "already wired" in proc.stdout


def test_the_provision_started_by_the_hook_does_not_recurse(run):
    for event in healer_hooks.EVENTS:
        proc, calls, seen, _ = run(event, HEALER_HOOK_NESTED="1", HEALER_DEPLOY_AUTH_MODE="entra",
                                   HEALER_CREATE_ENTRA_APP="true")
        assert proc.returncode == 0 and calls == [] and seen == [], event


def test_opting_out_leaves_the_wiring_to_the_operator(run):
    proc, calls, seen, _ = run("postdeploy", HEALER_AUTO_WIRE="false")
    assert proc.returncode == 0 and calls == [] and seen == []
    assert "azd env set HEALER_WIRE_TRIGGERS true && azd provision" in proc.stdout


def test_an_app_that_never_gets_ready_fails_at_the_deadline_with_what_to_do(run):
    run.configure(functions=["rollback_alert"])
    proc, calls, _, elapsed = run("postdeploy", HEALER_HOOK_TIMEOUT_SECONDS="1")
    assert proc.returncode == 1
    assert "functions not deployed: downshift_alert, downshift_budget, replication_events" in proc.stdout
    assert "what to do:" in proc.stdout and "azd hooks run postdeploy" in proc.stdout
    assert not any(c["argv"][0] in ("provision", "env") for c in calls), "nothing is wired on a half-ready app"
    assert elapsed < 15


def test_a_failed_wiring_provision_is_reported_and_undone(run):
    proc, calls, _, _ = run("postdeploy", FAKE_AZD_PROVISION_RC="1")
    assert proc.returncode == 1
    argvs = _argvs(calls)
    assert argvs[-1] == ["env", "set", "HEALER_WIRE_TRIGGERS", "false"]
    assert "FAILED:" in proc.stdout and "HEALER_WIRE_TRIGGERS is false again" in proc.stdout


def test_postprovision_wires_only_when_the_code_is_already_deployed(run):
    run.configure(functions=[])
    proc, calls, _, _ = run("postprovision")
    assert proc.returncode == 0 and "postdeploy hook wires" in proc.stdout
    assert not any(c["argv"][0] == "provision" for c in calls)
    run.configure()
    proc, calls, _, _ = run("postprovision")
    assert proc.returncode == 0 and ["provision", "--no-prompt"] in _argvs(calls)


def test_missing_outputs_fail_with_a_fix(run):
    proc, _, _, _ = run("postdeploy", AZURE_FUNCTION_APP_NAME="")
    assert proc.returncode == 1 and "AZURE_FUNCTION_APP_NAME is not set" in proc.stdout


def test_preprovision_creates_azure_monitors_service_principal_once(run):
    env = {"HEALER_DEPLOY_AUTH_MODE": "entra", "HEALER_CREATE_ENTRA_APP": "true"}
    proc, calls, seen, _ = run("preprovision", **env)
    assert proc.returncode == 0, proc.stdout
    posts = [r for r in seen if r["method"] == "POST"]
    assert [p["body"] for p in posts] == [{"appId": MONITOR}] and posts[0]["path"] == "/v1.0/servicePrincipals"
    assert all(r["authorization"] == "Bearer tok-127.0.0.1" for r in seen)
    assert any(c["argv"][:2] == ["auth", "token"] and c["argv"][-1].endswith("/.default") for c in calls)
    proc, _, seen, _ = run("preprovision", **env)  # idempotent: present now, nothing created
    assert proc.returncode == 0 and "exists" in proc.stdout
    assert [r["method"] for r in seen if r["path"].startswith("/v1.0")] == ["GET", "POST", "GET"]  # no 2nd POST


def test_preprovision_without_graph_permission_names_the_role_and_the_opt_out(run):
    run.configure(graphForbidden=True)
    proc, _, _, _ = run("preprovision", HEALER_DEPLOY_AUTH_MODE="entra", HEALER_CREATE_ENTRA_APP="true")
    assert proc.returncode == 1
    assert "Cloud Application Administrator" in proc.stdout and "HEALER_CREATE_ENTRA_APP false" in proc.stdout


def test_preprovision_is_a_no_op_without_the_entra_registration(run):
    proc, calls, seen, _ = run("preprovision")
    assert proc.returncode == 0 and calls == [] and seen == []


def test_decisions_are_pure_and_cover_every_event():
    assert healer_hooks.decide("postdeploy", {}).action == "wire"
    assert healer_hooks.decide("postprovision", {}).action == "wire-if-deployed"
    assert healer_hooks.decide("postdeploy", {"HEALER_WIRE_TRIGGERS": "True"}).action == "skip"
    assert healer_hooks.decide("preprovision", {"HEALER_DEPLOY_AUTH_MODE": "entra",
                                                "HEALER_CREATE_ENTRA_APP": "true"}).action == "ensure-monitor-sp"
    assert healer_hooks.missing_functions({"rollback_alert"}) == ["downshift_alert", "downshift_budget",
                                                                  "replication_events"]


def test_hook_uses_only_the_standard_library():
    import ast
    tree = ast.parse(HOOK.read_text())
    imported = {n.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for n in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_every_function_the_hook_waits_for_exists_in_the_app():
    source = (REPO / "function_app.py").read_text()
    for name in healer_hooks.REQUIRED_FUNCTIONS:
        assert f'"{name}"' in source, name


def test_azure_yaml_runs_the_hook_from_sh_and_pwsh():
    doc = yaml.safe_load((REPO / "azure.yaml").read_text())
    hooks = doc["hooks"]
    assert set(hooks) == {"preprovision", "postprovision", "postdeploy"}
    for event, hook in hooks.items():
        assert hook["posix"]["shell"] == "sh" and hook["windows"]["shell"] == "pwsh"
        assert hook["posix"]["run"] == f"python3 infra/hooks/healer_hooks.py {event}"
        # pwsh: pass the script's exit code on, so a failed hook stops azd
        assert hook["windows"]["run"] == f"python infra/hooks/healer_hooks.py {event}; exit $LASTEXITCODE"
        for platform in ("posix", "windows"):
            assert hook[platform].get("continueOnError", False) is False


def test_the_posix_entry_runs_as_azd_runs_it_from_the_project_root():
    """azd runs project hooks from the directory of azure.yaml with the named shell."""
    hooks = yaml.safe_load((REPO / "azure.yaml").read_text())["hooks"]
    for event, hook in hooks.items():
        proc = subprocess.run(["sh", "-c", hook["posix"]["run"]], cwd=str(REPO), capture_output=True, text=True,
                              env={**os.environ, "HEALER_HOOK_NESTED": "1"}, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"healer-hook: {event}: inside the provision"), proc.stdout


def test_an_unreachable_resource_manager_is_a_clear_failure(run):
    dead = f"http://127.0.0.1:{free_port()}"
    proc, calls, _, _ = run("postdeploy", HEALER_HOOK_ARM_ENDPOINT=dead)
    assert proc.returncode == 1 and "cannot reach" in proc.stdout and "what to do:" in proc.stdout
    assert not any(c["argv"][0] == "provision" for c in calls)


def test_a_provision_that_wired_nothing_is_not_reported_as_wired(run):
    proc, _, _, _ = run("postdeploy", FAKE_AZD_GROUPS=",,")
    assert proc.returncode == 1 and "no action group ids" in proc.stdout and "wired:" not in proc.stdout
