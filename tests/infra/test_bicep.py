"""Offline checks of Healer's Bicep (no Azure, no bicep CLI): it parses, it grants no more than the allowlist,
its security settings hold, it sets exactly the settings the code reads, and its KQL is valid.

The Bicep is parsed to a JSON tree with pycep-parser. In that tree literals and identifiers are both plain strings
('x' and x look alike), so identifier checks resolve names against the file's parameters and variables.
"""
from __future__ import annotations

import json
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import pytest
from pycep import BicepParser

from shared.config import SETTINGS, Settings
from shared.policy import load_policy

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN = INFRA / "main.bicep"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# Built-in roles Healer may hold (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles),
# each assigned on one resource. Anything else, and these three in particular, fails the build.
ALLOWED_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "d5a91429-5739-47e2-a06b-3470a27159e7": "EventGrid Data Sender",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "7f951dda-4ed3-4680-a7ca-43fe172d538d": "AcrPull",
    "acdd72a7-3385-43ef-8e0b-b3a4e0e0f4d4": "Reader",   # on a watched registry only: its replications' status
    "73c42c96-874c-492b-b04d-ab87d138a893": "Log Analytics Reader",
    "43d0d8ad-25c7-4714-9337-8ba259a9fe05": "Monitoring Reader",
    "5ae67dd6-50cb-40e7-96ff-dc2bfa4b606b": "App Configuration Data Owner",
    "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd": "Cognitive Services OpenAI User",
}
FORBIDDEN_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
}
# GUIDs that are not role definitions but may appear in the Bicep.
OTHER_GUIDS = {"461e8683-5575-4561-ac7f-899cc907d62a"}  # Azure Monitor's secure-webhook application id

# The custom role on target apps: exactly what the rollback and downshift healers call (healers/rollback/arm.py:
# get/get_slot, list_deployments[_slot], list_application_settings[_slot], get_configuration[_slot], swap + poll;
# downshift: the production app's settings and slotConfigNames read/write; nothing writes a slot's config).
SITE_OPERATOR_ACTIONS = {
    "Microsoft.Web/sites/read",
    "Microsoft.Web/sites/slots/read",
    "Microsoft.Web/sites/config/read",
    "Microsoft.Web/sites/config/list/action",
    "Microsoft.Web/sites/config/write",
    "Microsoft.Web/sites/slots/config/read",
    "Microsoft.Web/sites/slots/config/list/action",
    "Microsoft.Web/sites/deployments/read",
    "Microsoft.Web/sites/slots/deployments/read",
    "Microsoft.Web/sites/slotsswap/action",
    "Microsoft.Web/sites/slots/slotsswap/action",
    "Microsoft.Web/sites/operationresults/read",
    "Microsoft.Web/sites/slots/operationresults/read",
    # rollback evidence and recovery proof (issue 14): instances, deployment logs, the alert's metric
    "Microsoft.Web/sites/instances/read",
    "Microsoft.Web/sites/deployments/log/read",
    "Microsoft.Web/sites/slots/deployments/log/read",
    "Microsoft.Insights/metrics/read",
}

# Settings the code reads that are intentionally not set in Azure, and why.
LOCAL_ONLY = {
    "AzureWebJobsStorage": "connection string for Azurite; Azure uses the identity-based AzureWebJobsStorage__*",
}
LOCAL_ONLY_PREFIXES = ("IDENTITY_",)  # set by the platform's managed-identity endpoint, never by us
# Settings the Bicep sets that the Functions host or an Azure SDK reads, not Healer's code.
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__credential": "identity-based storage connection for the Functions host",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Entra ID ingestion (host and the Azure Monitor exporter)",
}
# The Functions host's per-function switches (AzureWebJobs.<function>.Disabled): with splitWorkers the main app's
# queue workers and timers are off and run in the worker app. Quoted Bicep keys keep their quotes in the parse tree.
WORKER_FUNCTIONS = ("rollback_worker", "rollback_dead_letter", "housekeeping", "downshift_tick", "downshift_worker",
                    "downshift_dead_letter", "replication_worker", "replication_dead_letter", "errors_daily",
                    "errors_worker", "errors_dead_letter", "notify_worker", "notify_dead_letter")
PLATFORM_SETTINGS.update({f"'AzureWebJobs.{f}.Disabled'": "Functions host: this function runs in the worker app"
                          for f in WORKER_FUNCTIONS})
PRIMARY_PYTHON, TESTED_PYTHONS = "3.11", ("3.11", "3.13")
# Bicep defaults that deliberately differ from the code's defaults.
DELIBERATE_DEFAULTS = {
    "HEALER_DRY_RUN": "a new deployment decides and records but does not act until an operator turns it off",
}
KV_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\(VaultName=\$\{names\.keyVault\};SecretName=([a-z0-9-]+)\)$")
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


# ---------------------------------------------------------------------------------------------- tree helpers

@lru_cache(maxsize=1)
def _parser() -> BicepParser:
    return BicepParser()


@lru_cache(maxsize=None)
def parsed(path: Path) -> dict[str, Any]:
    return _parser().parse(file_path=path)


def body(node: dict[str, Any]) -> dict[str, Any]:
    """A resource/module's own properties, under any `if (...)` condition or `for` loop wrappers."""
    node = node["config"]
    while isinstance(node, dict) and ("condition" in node or "loop_type" in node) and "config" in node:
        node = node["config"]
    return node


def resources(type_name: str | None = None) -> Iterator[tuple[Path, str, dict[str, Any]]]:
    for path in BICEP_FILES:
        for name, res in parsed(path).get("resources", {}).items():
            if type_name is None or res["type"].lower() == type_name.lower():
                yield path, name, res


def one(type_name: str, in_file: str | None = None) -> dict[str, Any]:
    found = [res for path, _, res in resources(type_name)
             if not res["existing"] and (in_file is None or path.name == in_file)]
    assert len(found) == 1, f"expected one {type_name}, found {len(found)}"
    return body(found[0])


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def leaves(node: Any) -> Iterator[Any]:
    """Values an expression can evaluate to, for ternaries: both branches, never the condition."""
    if isinstance(node, dict) and "operator" in node and node["operator"]["type"] == "conditional":
        ops = node["operator"]["operands"]
        yield from leaves(ops["true_value"])
        yield from leaves(ops["false_value"])
    else:
        yield node


def variable(path: Path, name: str) -> Any:
    return parsed(path)["variables"][name]["value"]


def params(path: Path) -> dict[str, Any]:
    return parsed(path).get("parameters", {})


def secure_params(path: Path) -> set[str]:
    return {n for n, p in params(path).items() if any(d["type"] == "secure" for d in p.get("decorators", []))}


# ---------------------------------------------------------------------------------------------- parsing

def test_every_bicep_file_parses():
    assert MAIN in BICEP_FILES and len(BICEP_FILES) >= 10
    for path in BICEP_FILES:
        tree = parsed(path)
        assert tree.get("resources") or tree.get("modules"), f"{path.name}: nothing declared"
        # pycep keeps only the last of several nested child resources: children are declared with `parent:`
        nested = re.findall(r"^[ \t]+resource \w+ ", path.read_text(), re.M)
        assert not nested, f"{path.name}: declare child resources at top level with parent: ({nested})"


def test_parser_rejects_broken_bicep():
    with pytest.raises(Exception):
        _parser().parse(text="resource x 'Microsoft.Web/sites@2024-04-01' = {\n  name: 'a'\n")


def test_every_module_path_exists():
    for path in BICEP_FILES:
        for name, module in parsed(path).get("modules", {}).items():
            target = (path.parent / module["detail"]["path"]).resolve()
            assert target.is_file(), f"{path.name}: module {name} points at missing {target}"


# ---------------------------------------------------------------------------------------------- least privilege

def _role_guid(path: Path, role_definition: Any) -> str:
    """Resolve subscriptionResourceId('...roleDefinitions', roles.<key>) to the GUID in the file's `roles`."""
    fn = role_definition["function"]
    assert fn["type"] == "subscription_resource_id", f"{path.name}: role definition must be subscriptionResourceId"
    assert fn["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
    ref = fn["parameters"]["resource_name_1"]
    ops = ref["operator"]["operands"]
    assert ref["operator"]["type"] == "property_accessor" and ops["operand_1"] == "roles", \
        f"{path.name}: role ids must come from the file's `roles` map"
    return variable(path, "roles")[ops["operand_2"]]


def test_role_assignments_use_only_allowlisted_roles_on_single_resources():
    seen: dict[str, str] = {}
    custom = 0
    for path, name, res in resources("Microsoft.Authorization/roleAssignments"):
        tree = parsed(path)
        assert tree["globals"]["scope"]["value"] == "resourceGroup", \
            f"{path.name}: role assignment {name} outside a resource-group-scoped module"
        cfg = body(res)
        scope = cfg.get("scope")
        assert isinstance(scope, str) and scope in tree["resources"], \
            f"{path.name}: {name} must be scoped to a resource symbol, got {scope!r}"
        assert tree["resources"][scope]["type"] != "Microsoft.Resources/resourceGroups"
        props = cfg["properties"]
        assert props["principalId"] == "principalId" and props["principalType"] == "ServicePrincipal"
        role = props["roleDefinitionId"]
        if role == "siteOperatorRoleId":  # Healer's custom role, checked below
            assert tree["resources"][scope]["type"] == "Microsoft.Web/sites"
            custom += 1
            continue
        guid = _role_guid(path, role)
        assert guid not in FORBIDDEN_ROLES, f"{path.name}: {name} assigns {FORBIDDEN_ROLES[guid]}"
        assert guid in ALLOWED_ROLES, f"{path.name}: {name} assigns role {guid}, not on the allowlist"
        seen[ALLOWED_ROLES[guid]] = f"{path.name}:{name}"
    assert custom == 1
    assert set(seen) == set(ALLOWED_ROLES.values()), f"allowlisted but unused: {set(ALLOWED_ROLES.values()) - set(seen)}"


def test_no_guid_anywhere_outside_the_allowlist():
    for path in BICEP_FILES:
        for guid in GUID.findall(path.read_text()):
            guid = guid.lower()
            assert guid not in FORBIDDEN_ROLES, f"{path.name} mentions {FORBIDDEN_ROLES[guid]}"
            assert guid in ALLOWED_ROLES or guid in OTHER_GUIDS, f"{path.name}: unexplained GUID {guid}"


def test_subscription_scope_files_assign_no_roles():
    for path in BICEP_FILES:
        tree = parsed(path)
        if tree["globals"]["scope"]["value"] != "resourceGroup":
            types = {res["type"] for res in tree.get("resources", {}).values()}
            assert "Microsoft.Authorization/roleAssignments" not in types, f"{path.name} assigns at {types}"
            assert all(m["config"].get("scope") not in (None, "subscription()") or path == MAIN
                       for m in tree.get("modules", {}).values())


def test_custom_site_role_is_exactly_what_the_healers_call():
    role = one("Microsoft.Authorization/roleDefinitions")
    props = role["properties"]
    assert props["type"] == "CustomRole"
    [permission] = props["permissions"]
    assert set(permission["actions"]) == SITE_OPERATOR_ACTIONS
    assert len(permission["actions"]) == len(SITE_OPERATOR_ACTIONS)
    assert not any("*" in a for a in permission["actions"])
    assert permission["notActions"] == permission["dataActions"] == permission["notDataActions"] == []
    assert props["assignableScopes"] == "assignableScopes"
    # main.bicep makes it assignable only in the target apps' resource groups, and only when there are targets
    module = parsed(MAIN)["modules"]["siteOperatorRole"]
    assert module["config"]["condition"] is not None
    assert body(module)["params"]["assignableScopes"] == "targetAppScopes"
    scopes = variable(MAIN, "targetAppScopes")
    assert "join(take(split(id, '/'), 5), '/')" in MAIN.read_text() and scopes["function"]["type"] == "union"


def test_roles_on_other_resources_are_assigned_in_their_own_resource_group_to_healers_identity():
    module = body(parsed(MAIN)["modules"]["roleOnTarget"])
    assert module["scope"]["function"]["type"] == "resource_group"
    assert module["params"]["principalId"]["operator"]["operands"]["operand_1"] == "identity"
    kinds = {leaf for leaf in walk(variable(MAIN, "roleTargets")) if isinstance(leaf, str)}
    allowed_kinds = set(params(INFRA / "modules" / "rbac-target.bicep")["kind"]["decorators"][0]["argument"])
    assert {"site", "registry", "workspace", "appInsights", "appConfiguration", "openAi"} <= kinds
    assert allowed_kinds == {"site", "registry", "workspace", "appInsights", "appConfiguration", "openAi"}


# ---------------------------------------------------------------------------------------------- hardening

def test_storage_is_entra_only_https_tls12():
    props = one("Microsoft.Storage/storageAccounts")["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["allowBlobPublicAccess"] is False
    assert props["defaultToOAuthAuthentication"] is True


def test_function_app_is_flex_python_user_identity_https_tls12_no_ftp():
    site = one("Microsoft.Web/sites")
    props = site["properties"]
    assert props["httpsOnly"] is True
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["siteConfig"]["ftpsState"] == "Disabled"
    assert site["identity"]["type"] == "UserAssigned"
    assert props["keyVaultReferenceIdentity"] == "identityId"
    runtime = props["functionAppConfig"]["runtime"]
    tested = PRIMARY_PYTHON  # the suite runs on it and on 3.13 (scripts/test.sh); the deployment uses the primary
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in TESTED_PYTHONS
    fa = INFRA / "modules" / "functionapp.bicep"
    assert runtime == {"name": "python", "version": "pythonVersion"}
    assert params(fa)["pythonVersion"]["default"] == tested == params(MAIN)["pythonVersion"]["default"]
    assert props["functionAppConfig"]["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    plan = one("Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    policies = {body(r)["name"]: body(r)["properties"]["allow"]
                for _, _, r in resources("Microsoft.Web/sites/basicPublishingCredentialsPolicies")}
    assert policies == {"ftp": False, "scm": False}
    configs = {body(r)["name"]: body(r) for _, _, r in resources("Microsoft.Web/sites/config")}
    assert set(configs) == {"appsettings", "authsettingsV2"}
    assert configs["appsettings"]["properties"] == "appSettings"
    easy_auth = configs["authsettingsV2"]["properties"]
    assert easy_auth["globalValidation"]["requireAuthentication"] is True, "the console needs a signed-in operator"
    assert easy_auth["identityProviders"]["azureActiveDirectory"]["registration"]["clientId"] == "easyAuthClientId"


def test_vault_topic_and_telemetry_use_entra_only():
    assert one("Microsoft.KeyVault/vaults")["properties"]["enableRbacAuthorization"] is True
    assert one("Microsoft.EventGrid/topics")["properties"]["disableLocalAuth"] is True
    assert one("Microsoft.Insights/components")["properties"]["DisableLocalAuth"] is True


def test_function_keys_are_read_only_to_configure_action_groups():
    """Senders hold per-function keys of their intake function, never the host key (issue 9)."""
    for path in BICEP_FILES:
        text = path.read_text()
        if "listKeys(" in text or "listSecrets(" in text or "listConnectionStrings(" in text:
            assert path.name == "alerts.bicep", f"{path.name} reads keys"
            assert "Microsoft.Web/sites/functions'" in text and "/host/" not in text


# ---------------------------------------------------------------------------------------------- app settings

def _healer_settings() -> dict[str, Any]:
    return variable(MAIN, "healerSettings")


def test_every_setting_the_code_reads_is_set_by_the_bicep_and_vice_versa():
    code = {s.name for s in SETTINGS}
    expected = {n for n in code if n not in LOCAL_ONLY and not n.startswith(LOCAL_ONLY_PREFIXES)}
    bicep = set(_healer_settings())
    missing, extra = sorted(expected - bicep), sorted(bicep - expected)
    assert not missing, f"settings in shared.config.SETTINGS not set in infra/main.bicep healerSettings: {missing}"
    assert not extra, f"infra/main.bicep healerSettings sets settings the code does not declare: {extra}"
    assert set(LOCAL_ONLY) <= code, "LOCAL_ONLY names a setting the code no longer has"
    platform = set(variable(MAIN, "platformSettings"))
    assert platform == set(PLATFORM_SETTINGS) and not platform & code
    app = body(parsed(MAIN)["modules"]["functionApp"])["params"]["appSettings"]["function"]
    assert app["type"] == "union" and set(app["parameters"].values()) == {"platformSettings", "healerSettings"}


def test_secrets_are_only_key_vault_references():
    secret_names = {s.name for s in SETTINGS if s.secret}
    created = {body(r)["name"] for _, _, r in resources("Microsoft.KeyVault/vaults/secrets")}
    secure = secure_params(MAIN)
    assert {"notifyWebhookUrl", "githubToken"} <= secure
    for name, value in {**_healer_settings(), **variable(MAIN, "platformSettings")}.items():
        for leaf in leaves(value):
            text = json.dumps(leaf)
            assert not any(p in text for p in secure), f"{name}: a @secure() parameter flows into a plain value"
            assert not re.search(r"AccountKey=|SharedAccessSignature=|[?&]sig=|listKeys|password", text, re.I), name
            if name in secret_names:
                assert isinstance(leaf, str), f"{name}: secret must be a Key Vault reference, got {leaf!r}"
                if leaf:
                    match = KV_REFERENCE.match(leaf)
                    assert match, f"{name}: secret must be a Key Vault reference, got {leaf!r}"
                    assert match.group(1) in created, f"{name}: Key Vault secret {match.group(1)} is never created"


def _param_default_as_setting(value: Any) -> tuple[str, Any] | None:
    """(param name, its default rendered as the app setting string) when a setting's value is a parameter."""
    main_params = params(MAIN)
    name = None
    if isinstance(value, str) and value in main_params:
        name = value
    elif isinstance(value, dict) and "function" in value and value["function"]["type"] == "string":
        name = value["function"]["parameters"]["value_to_convert"]
    elif isinstance(value, dict) and value.get("operator", {}).get("type") == "conditional":
        ops = value["operator"]["operands"]
        if isinstance(ops["condition"], str) and ops["condition"] in main_params \
                and (ops["true_value"], ops["false_value"]) == ("true", "false"):
            name = ops["condition"]
    if name is None or name not in main_params:
        return None
    default = main_params[name].get("default")
    if isinstance(default, bool):
        rendered: Any = "true" if default else "false"
    elif isinstance(default, (dict, list)):
        rendered = json.dumps(default)
    elif default is None:
        rendered = None
    else:
        rendered = str(default)
    return name, rendered


def test_bicep_defaults_match_the_codes_defaults():
    checked = 0
    for setting in SETTINGS:
        value = _healer_settings().get(setting.name)
        resolved = _param_default_as_setting(value)
        if resolved is None:
            continue
        checked += 1
        param, rendered = resolved
        if setting.name in DELIBERATE_DEFAULTS:
            assert rendered != setting.default, f"{setting.name}: no longer differs; drop it from DELIBERATE_DEFAULTS"
            continue
        if setting.default is None:
            assert rendered in ("", "[]", "{}", None) or setting.name == "HEALER_POLICY", \
                f"{setting.name}: parameter {param} defaults to {rendered!r}, the code to nothing"
        else:
            assert rendered == setting.default, \
                f"{setting.name}: parameter {param} defaults to {rendered!r}, the code to {setting.default!r}"
    assert checked >= 15


def test_default_parameter_values_are_valid_settings():
    main_params = params(MAIN)
    env = {"HEALER_POLICY": json.dumps(main_params["policy"]["default"]),
           "HEALER_ROLLBACK_TARGETS": json.dumps(main_params["rollbackTargets"]["default"]),
           "HEALER_ROLLBACK_RULE_MAP": json.dumps(main_params["rollbackRuleMap"]["default"]),
           "HEALER_LEASE_SECONDS": str(main_params["leaseSeconds"]["default"]),
           "HEALER_AUTH_MODE": main_params["authMode"]["default"],
           "HEALER_TABLE_PREFIX": main_params["tablePrefix"]["default"]}
    settings = Settings(env)
    policy, why = load_policy(settings.policy_document)
    assert policy is not None, why
    assert policy.default == "deny" and policy.rules == []
    assert settings.rollback_targets == {} and settings.rollback_rule_map == {}
    assert settings.auth_mode == "function-key" and settings.table_prefix == "healer" and settings.lease_seconds == 300


def test_parameters_file_names_only_declared_parameters():
    doc = json.loads((INFRA / "main.parameters.json").read_text())
    declared = set(params(MAIN))
    assert set(doc["parameters"]) <= declared, sorted(set(doc["parameters"]) - declared)
    assert doc["parameters"]["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    required = {n for n, p in params(MAIN).items() if "default" not in p}
    assert required <= set(doc["parameters"])


# ---------------------------------------------------------------------------------------------- alerts

def test_http5xx_alert_carries_the_properties_the_rollback_healer_reads():
    from healers.rollback.shell import SLOT_PROPERTY, TARGET_PROPERTY
    alert = one("Microsoft.Insights/metricAlerts")
    [action] = alert["properties"]["actions"]
    assert set(action["webHookProperties"]) == {f"'{TARGET_PROPERTY}'", f"'{SLOT_PROPERTY}'"}
    [criterion] = alert["properties"]["criteria"]["allOf"]
    assert criterion["metricName"] == "Http5xx" and criterion["metricNamespace"] == "Microsoft.Web/sites"


def test_action_groups_use_the_common_alert_schema_and_healers_routes():
    group = one("Microsoft.Insights/actionGroups", "alerts.bicep")
    [receiver] = group["properties"]["webhookReceivers"]
    assert receiver["useCommonAlertSchema"] is True
    assert receiver["serviceUri"].startswith("https://${functionHostName}/api/")
    routes = params(MAIN)["alertRoutes"]["default"]
    assert routes["rollback"] == "alerts/rollback"  # function_app.py
    throttle = one("Microsoft.Insights/scheduledQueryRules", "alerts.bicep")["properties"]["criteria"]["allOf"][0]
    assert [d["name"] for d in throttle["dimensions"]] == ["tenant"] and throttle["metricMeasureColumn"] == "ratio"


def test_registry_subscriptions_deliver_push_and_delete_to_the_function():
    sub = one("Microsoft.EventGrid/systemTopics/eventSubscriptions")
    assert set(sub["properties"]["filter"]["includedEventTypes"]) == {
        "Microsoft.ContainerRegistry.ImagePushed", "Microsoft.ContainerRegistry.ImageDeleted"}
    assert sub["properties"]["destination"]["endpointType"] == "AzureFunction"
    assert sub["properties"]["eventDeliverySchema"] == "EventGridSchema"


# ---------------------------------------------------------------------------------------------- KQL

def _loaded_kql() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in BICEP_FILES:
        for node in walk(parsed(path)):
            if isinstance(node, dict) and node.get("type") == "load_text_content":
                target = (path.parent / node["parameters"]["file_path"]).resolve()
                found[target.name] = target
    return found


def test_every_kql_file_is_loaded_by_the_bicep():
    loaded = _loaded_kql()
    for target in loaded.values():
        assert target.is_file() and target.parent == INFRA / "kql", target
    on_disk = {p.name for p in (INFRA / "kql").glob("*.kql")}
    assert on_disk == set(loaded), f"unused: {on_disk - set(loaded)}, missing: {set(loaded) - on_disk}"
    assert len(on_disk) >= 7


def test_kql_in_alert_rules_and_workbook_is_valid_against_the_workspace_schema():
    from standins.kql_check import errors, validate_kql
    queries = {name: path.read_text() for name, path in _loaded_kql().items()}
    queries["negative-control"] = "AppTraces | where NoSuchColumn == 1"
    results = validate_kql(queries, "workspace")
    assert errors(results.pop("negative-control")), "the validator accepted an unknown column"
    problems = {name: [str(d) for d in errors(diags)] for name, diags in results.items() if errors(diags)}
    assert not problems, problems


def test_workbook_reads_the_audit_dimensions_healer_writes():
    import inspect

    from shared import audit
    source = inspect.getsource(audit.record)
    kql = (INFRA / "kql" / "workbook-decisions.kql").read_text()
    for dimension in ("healer.healer", "healer.outcome"):
        assert f'"{dimension}"' in source and f'Properties["{dimension}"]' in kql
    assert 'getLogger("healer.audit")' in inspect.getsource(audit)
    assert '"healer.decisions"' in source + inspect.getsource(audit._decisions_counter)


# ---------------------------------------------------------------------------------------------- docs

def test_deploy_guide_documents_every_parameter_and_role():
    guide = (REPO / "docs" / "deploy.md").read_text()
    undocumented = [name for name in params(MAIN) if f"`{name}`" not in guide]
    assert not undocumented, f"docs/deploy.md does not mention parameters {undocumented}"
    missing_roles = [f"{name} ({guid})" for guid, name in ALLOWED_ROLES.items() if guid not in guide]
    assert not missing_roles, f"docs/deploy.md does not list roles {missing_roles}"
    assert all(action.replace("Microsoft.Web/", "") in guide for action in SITE_OPERATOR_ACTIONS)


def test_write_actions_of_the_custom_role_are_ones_the_code_calls():
    """A write on slots is granted only if some healer writes a slot's configuration (it none does: the downshift
    healer writes the production app's settings and slotConfigNames, the rollback healer only reads slots)."""
    code = "\n".join(p.read_text() for p in (REPO / "healers").rglob("*.py"))
    slot_writes = re.findall(r"web_apps\.(?:update|create_or_update|delete)\w*_slot\b", code)
    actions = set(one("Microsoft.Authorization/roleDefinitions")["properties"]["permissions"][0]["actions"])
    assert ("Microsoft.Web/sites/slots/config/write" in actions) == bool(slot_writes), slot_writes
    site_writes = re.findall(r"web_apps\.(update_application_settings|update_slot_configuration_names)\b", code)
    assert ("Microsoft.Web/sites/config/write" in actions) == bool(site_writes)


def test_the_example_budget_start_date_never_moves_between_provisions():
    """Cost Management rejects a change of a budget's start date ("Start date of budgets cannot be updated"), so a
    default computed at deploy time (utcNow) would fail every `azd provision` in a later month."""
    start = params(MAIN)["budgetStartDate"]
    assert start.get("default") == ""  # a literal, not utcNow(...)
    doc = json.loads((INFRA / "main.parameters.json").read_text())
    assert doc["parameters"]["budgetStartDate"]["value"] == "${HEALER_BUDGET_START_DATE=}"
    condition = json.dumps(parsed(MAIN)["modules"]["budget"]["config"]["condition"])
    assert "budgetStartDate" in condition


def test_split_apps_run_every_function_in_exactly_one_app(registered_functions):
    """splitWorkers: the main app keeps HTTP and Event Grid, the worker app queue triggers and timers; together
    they run every function function_app.py registers, each once."""
    from tests.functions import trigger
    main_off = {k.strip("'").split(".")[1] for k in variable(MAIN, "platformSettings") if k.startswith("'AzureWebJobs.")}
    switches = variable(MAIN, "workerAppSwitches")
    worker_on = {k.strip("'").split(".")[1] for k, v in switches.items() if v == "false"}
    worker_off = {k.strip("'").split(".")[1] for k, v in switches.items() if v == "true"}
    names = set(registered_functions)
    assert main_off == worker_on == set(WORKER_FUNCTIONS) and worker_off | worker_on == names
    assert not worker_off & worker_on
    for name in worker_on:
        assert trigger(registered_functions[name])["type"] in ("queueTrigger", "timerTrigger")
    for name in worker_off:
        assert trigger(registered_functions[name])["type"] in ("httpTrigger", "eventGridTrigger")
    worker = body(parsed(MAIN)["modules"]["workerApp"])
    assert worker["params"]["serviceName"] == "healer-worker"
