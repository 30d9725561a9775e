"""One-pass deploy in the Bicep (issue 18): validated parameters, typed documents that match the code's models,
one list of managed apps, and Healer's Entra app registration with the Microsoft Graph Bicep extension — checked on
the pycep tree, offline."""
from __future__ import annotations

import json
import re

from shared.config import DownshiftApp, RollbackTarget
from tests.infra.test_bicep import INFRA, MAIN, body, params, parsed, variable, walk

ENTRA = INFRA / "modules" / "entra-app.bicep"
AUTH = INFRA / "modules" / "functionapp-auth.bicep"
GRAPH_ALIAS = "br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:1.0.0"
MONITOR_APP_ID = "461e8683-5575-4561-ac7f-899cc907d62a"


def _types() -> dict:
    return parsed(MAIN)["types"]


def _decorators(param: str) -> dict[str, object]:
    return {d["type"]: d.get("argument") for d in params(MAIN)[param].get("decorators", [])}


def _aliases(model) -> dict[str, bool]:
    """Property names of a pydantic model as JSON (alias or name) -> required."""
    return {(f.alias or name): f.is_required() for name, f in model.model_fields.items()}


def _optional_props(type_name: str) -> set[str]:
    """Properties declared `name: type?` (pycep drops the `?`, so read the declaration's text)."""
    text = MAIN.read_text()
    block = re.search(r"^type %s = \{\n(.*?)^\}" % type_name, text, re.M | re.S).group(1)
    return set(re.findall(r"^\s+(\w+): \w+\?$", block, re.M))


# ---------------------------------------------------------------------------------------------- validation

def test_parameters_that_a_typo_could_break_are_constrained():
    expected = {
        "authMode": "allowed", "pythonVersion": "allowed", "downshiftSchema": "allowed", "errorsSchema": "allowed",
        "errorsLlmProvider": "allowed", "environmentName": "min_length", "tablePrefix": "max_length",
        "entraMonitorAppId": "min_length", "entraTenantId": "max_length",
    }
    for name, decorator in expected.items():
        assert decorator in _decorators(name), f"{name} lacks @{decorator}"
    for name in ("maximumInstanceCount", "leaseSeconds", "armPollSeconds", "maxBodyBytes", "auditRetentionDays",
                 "dedupeRetentionDays", "replicationDeadlineSeconds", "replicationTagRaceGraceSeconds",
                 "errorsWindowHours", "errorsMaxRows", "errorsTopN", "errorsBaselineDays", "errorsLlmTokenBudget",
                 "errorsLlmTimeoutSeconds", "errorsLlmMaxRetries"):
        d = _decorators(name)
        assert "min_value" in d and "max_value" in d, f"{name} lacks a range"
        default = params(MAIN)[name]["default"]
        assert d["min_value"] <= default <= d["max_value"], f"{name}: default {default} outside its own range"
    assert set(_decorators("authMode")["allowed"]) == {"function-key", "entra"}


def test_every_int_parameter_has_a_lower_bound():
    unbounded = {n for n, p in params(MAIN).items() if p["type"] == "int" and "min_value" not in _decorators(n)}
    assert not unbounded, f"int parameters without @minValue: {sorted(unbounded)}"


def test_json_documents_are_typed_and_sealed():
    assert params(MAIN)["rollbackTargets"]["type"] == {"type": "array", "item_type": "rollbackTarget"}
    assert params(MAIN)["downshiftApps"]["type"] == {"type": "array", "item_type": "downshiftApp"}
    assert params(MAIN)["policy"]["type"] == "policyDocument"
    types = _types()
    for name in ("rollbackTarget", "downshiftApp"):
        assert {"type": "sealed"} in types[name]["decorators"], f"{name} must be @sealed() so typos fail"
    assert types["configChangeMode"]["value"] == "ask | skip"
    assert types["policyDocument"]["value"]["default"] == "policyDefault"
    assert types["policyDefault"]["value"] == "ask | deny"  # never allow (shared/policy.py)
    site = {d["type"]: d.get("argument") for d in types["siteResourceId"]["decorators"]}
    assert site["min_length"] >= 60 and site["max_length"] <= 400


def test_typed_documents_name_exactly_the_codes_properties():
    for type_name, model in (("rollbackTarget", RollbackTarget), ("downshiftApp", DownshiftApp)):
        bicep = set(_types()[type_name]["value"])
        code = _aliases(model)
        assert bicep == set(code), f"{type_name}: only in Bicep {bicep - set(code)}, only in code {set(code) - bicep}"
        optional = _optional_props(type_name)
        for prop, required in code.items():
            assert (prop not in optional) == required, f"{type_name}.{prop}: required in code={required}"


def test_typed_examples_from_the_docs_are_valid_settings():
    """The README's downshift example and a full rollback target satisfy both the Bicep type and the code."""
    target = {"resourceId": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/shop-prod/providers/Microsoft.Web/sites/shop-web",
              "slot": "staging", "onConfigChange": "skip", "recovery": {"minutes": 10}}
    RollbackTarget.model_validate(target)
    assert set(target) <= set(_types()["rollbackTarget"]["value"])
    assert len(target["resourceId"]) >= 60


# ---------------------------------------------------------------------------------------------- one source

def test_one_list_of_apps_feeds_both_the_settings_and_the_role_assignments():
    settings = variable(MAIN, "healerSettings")
    assert settings["HEALER_ROLLBACK_TARGETS"]["function"]["parameters"]["value_to_convert"] == "rollbackTargets"
    assert settings["HEALER_DOWNSHIFT_APPS"]["function"]["parameters"]["value_to_convert"] == "downshiftApps"
    source = json.dumps(variable(MAIN, "targetAppIds"))
    referenced = {p for p in params(MAIN) if re.search(r'"%s"' % p, source)}
    assert referenced == {"rollbackTargets", "downshiftApps"}, referenced
    sites = [node for node in walk(variable(MAIN, "roleTargets"))
             if isinstance(node, dict) and node.get("kind") == "site"]
    assert sites and all(node["id"] == "id" for node in sites)
    assert "targetAppIds" in json.dumps(variable(MAIN, "roleTargets"))
    assert not [p for p in params(MAIN) if re.fullmatch(r"\w+AppIds", p)], "a second list of app ids is back"


# ---------------------------------------------------------------------------------------------- Entra app

def test_graph_extension_is_declared_and_aliased():
    assert "microsoftGraphV1" in parsed(ENTRA)["extensions"]
    config = json.loads((INFRA / "bicepconfig.json").read_text())
    assert config["extensions"]["microsoftGraphV1"] == GRAPH_ALIAS


def test_app_registration_has_the_roles_uri_redirect_and_monitor_assignment():
    tree = parsed(ENTRA)
    res = tree["resources"]
    app = body(res["app"])
    assert res["app"]["type"] == "Microsoft.Graph/applications" and res["app"]["api_version"] == "v1.0"
    assert app["uniqueName"] == "uniqueName" and app["identifierUris"] == ["identifierUri"]
    roles = {r["value"]: r for r in app["appRoles"]}
    assert set(roles) == {"webhookRole", "approverRole", "readerRole"}
    defaults = {n: p.get("default") for n, p in params(ENTRA).items()}
    assert (defaults["webhookRole"], defaults["approverRole"], defaults["readerRole"]) == (
        "ActionGroupsSecureWebhook", "Healer.Approver", "Healer.Reader")
    assert defaults["monitorAppId"] == MONITOR_APP_ID
    assert roles["webhookRole"]["allowedMemberTypes"] == ["Application"]
    assert roles["approverRole"]["allowedMemberTypes"] == ["User"]
    assert app["web"]["redirectUris"] == ["https://${functionHostName}/.auth/login/aad/callback"]
    assert app["web"]["implicitGrantSettings"]["enableIdTokenIssuance"] is True
    assert res["healerSp"]["type"] == "Microsoft.Graph/servicePrincipals"
    assert res["monitorSp"]["existing"] is True and body(res["monitorSp"])["appId"] == "monitorAppId"
    assign = body(res["monitorMayCall"])
    assert res["monitorMayCall"]["type"] == "Microsoft.Graph/appRoleAssignedTo"
    assert assign["appRoleId"] == "webhookRoleId" == roles["webhookRole"]["id"]
    assert json.dumps(assign["principalId"]).count("monitorSp") == 1
    assert json.dumps(assign["resourceId"]).count("healerSp") == 1
    assert set(tree["outputs"]) >= {"clientId", "objectId", "identifierUri"}


def test_registration_is_opt_in_and_its_outputs_fill_the_empty_parameters():
    module = parsed(MAIN)["modules"]["entraApp"]
    condition = json.dumps(module["config"]["condition"])
    assert "createApp" in condition
    assert "authMode == 'entra' && createEntraApp" in MAIN.read_text()
    assert params(MAIN)["createEntraApp"]["default"] is False
    text = MAIN.read_text()
    assert "!empty(entraClientId) ? entraClientId : (createApp ? entraApp.outputs.clientId : '')" in text
    assert "!empty(secureWebhookObjectId) ? secureWebhookObjectId : (createApp ? entraApp.outputs.objectId : '')" in text
    assert body(parsed(MAIN)["modules"]["functionAppAuth"])["params"]["easyAuthClientId"] == "effectiveClientId"
    assert variable(MAIN, "healerSettings")["HEALER_ENTRA_AUDIENCE"] == "effectiveAudience"
    doc = json.loads((INFRA / "main.parameters.json").read_text())
    assert doc["parameters"]["createEntraApp"]["value"] == "${HEALER_CREATE_ENTRA_APP=false}"


def test_no_dependency_cycle_between_app_registration_and_function_app():
    modules = parsed(MAIN)["modules"]
    fa = json.dumps(body(modules["functionApp"])) + json.dumps(variable(MAIN, "healerSettings"))
    fa += "".join(json.dumps(variable(MAIN, v)) for v in ("effectiveAudience", "webhookIdentifierUri", "createApp"))
    assert not re.search(r"\bentraApp\b|\bfunctionAppAuth\b", fa), "the Function App must not need the registration"
    reg = json.dumps(body(modules["entraApp"])["params"])
    assert "functionApp" in reg  # the redirect URI needs the app's host name
    auth = json.dumps(body(modules["functionAppAuth"])["params"])
    assert "functionApp" in auth and "effectiveClientId" in auth
    assert "authsettingsV2" not in (INFRA / "modules" / "functionapp.bicep").read_text()
    assert "authsettingsV2" in AUTH.read_text()


def test_the_hooks_read_the_environment_names_the_parameters_file_maps():
    import sys
    sys.path.insert(0, str(INFRA / "hooks"))
    import healer_hooks
    doc = (INFRA / "main.parameters.json").read_text()
    hook = (INFRA / "hooks" / "healer_hooks.py").read_text()
    for env in ("HEALER_WIRE_TRIGGERS", "HEALER_DEPLOY_AUTH_MODE", "HEALER_CREATE_ENTRA_APP"):
        assert "${%s=" % env in doc and f'"{env}"' in hook, env
    for output in ("AZURE_RESOURCE_GROUP", "AZURE_FUNCTION_APP_NAME", "HEALER_API_BASE_URL"):
        assert output in parsed(MAIN)["outputs"] and f"'{output}'" in hook, output
    assert healer_hooks.AZURE_MONITOR_APP_ID == params(MAIN)["entraMonitorAppId"]["default"]


def test_a_workspace_named_once_by_resource_id_gets_the_role_and_feeds_the_setting():
    settings = variable(MAIN, "healerSettings")
    for setting, param in (("HEALER_DOWNSHIFT_WORKSPACE_ID", "downshiftWorkspaceId"),
                           ("HEALER_ERRORS_WORKSPACE_ID", "errorsWorkspaceId")):
        ops = settings[setting]["operator"]["operands"]
        assert json.dumps(ops["condition"]).count(param) == 1  # startsWith(<param>, '/')
        true_value = json.dumps(ops["true_value"])
        assert "reference" in true_value and "customerId" in true_value and param in true_value
        assert ops["false_value"] == param  # a Workspace ID (GUID) still works as before
    queried = json.dumps(variable(MAIN, "queriedWorkspaceIds"))
    assert all(p in queried for p in ("logAnalyticsWorkspaceIds", "downshiftWorkspaceId", "errorsWorkspaceId"))
    assert "queriedWorkspaceIds" in json.dumps(variable(MAIN, "roleTargets"))
    assert "logAnalyticsWorkspaceIds" not in json.dumps(variable(MAIN, "roleTargets"))
