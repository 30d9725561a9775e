// Healer: an audited self-healing service on Azure Functions (Flex Consumption), deployed with `azd up`.
//
// Layout: one resource group for Healer (identity, storage, monitoring, Key Vault, Function App, outcome topic,
// action groups, workbook); role assignments on the resources Healer heals are made in *their* resource groups,
// each scoped to the one resource (never a subscription- or resource-group-wide role).
//
// One pass: `azd up` creates everything and deploys the code; then azd's postdeploy hook
// (infra/hooks/healer_hooks.py) waits for the deployed functions, sets HEALER_WIRE_TRIGGERS=true and runs
// `azd provision` once more, which wires what needs the running functions (action groups read the function key;
// Event Grid validates the function endpoint). See docs/deploy.md.
targetScope = 'subscription'

// ------------------------------------------------------------------------------------------------ types
// The JSON documents Healer reads, typed so that a typo fails `azd provision` instead of Healer's start-up:
// sealed objects reject unknown property names; the names are shared.config's RollbackTarget / DownshiftApp
// aliases (tests/infra/test_deploy_bicep.py checks both directions). Constraints sit on named types because the
// offline parser (pycep) reads decorators on type statements but not on properties.

@description('Resource id of an App Service app: /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Web/sites/<app>.')
@minLength(60)
@maxLength(400)
type siteResourceId = string

@minLength(1)
@maxLength(300)
type shortText = string

@minLength(9)
@maxLength(2000)
type httpsUrl = string

@minValue(1)
type positiveInt = int

type configChangeMode = 'ask' | 'skip'
type downshiftActuator = 'appConfiguration' | 'appSetting'
type tenantKeyMode = 'label' | 'key'
type policyDefault = 'ask' | 'deny'

@description('One App Service app the rollback healer may swap back (HEALER_ROLLBACK_TARGETS); Healer gets its site-operator role on it.')
@sealed()
type rollbackTarget = {
  resourceId: siteResourceId
  slot: shortText?
  buildMarker: shortText?
  healthUrl: httpsUrl?
  dryRun: bool?
  maxRollbacks: positiveInt?
  windowMinutes: positiveInt?
  maxBuildAgeMinutes: positiveInt?
  onConfigChange: configChangeMode?
  activityLog: bool?
  appConfigEndpoint: shortText?
  appConfigKeys: shortText?
  appConfigLabel: shortText?
  recovery: object?
  freezeInsteadOfRollback: bool?
}

@description('One AI app the downshift healer manages (HEALER_DOWNSHIFT_APPS); Healer gets its site-operator role on it.')
@sealed()
type downshiftApp = {
  resourceId: siteResourceId
  actuator: downshiftActuator?
  appConfigEndpoint: shortText?
  key: shortText?
  tenantKeys: tenantKeyMode?
  sentinelKey: shortText?
  blockKey: shortText?
  role: shortText?
  costMetric: shortText?
  tenantDimension: shortText?
  rateCard: object?
  policy: object
  tenants: object?
  defaultBudget: int?
  budgetNames: array?
  rules: array?
  probeUrl: httpsUrl?
  dryRun: bool?
}

@description('HEALER_POLICY: version 1, a default (ask or deny, never allow) and allow/ask/deny rules. Not sealed: the policy document may grow.')
type policyDocument = {
  version: positiveInt
  default: policyDefault
  rules: array
}

// ------------------------------------------------------------------------------------------------ deployment

@minLength(1)
@maxLength(64)
@description('azd environment name; also seeds the unique suffix of every resource name.')
param environmentName string

@minLength(1)
@description('Region of Healer\'s resources (must offer Flex Consumption).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group for Healer. Empty: rg-<environmentName>.')
param resourceGroupName string = ''

@allowed([
  '3.11'
  '3.12'
  '3.13'
])
@description('Python version of the Functions runtime; the version the project is tested on.')
param pythonVersion string = '3.11'

@minValue(40)
@maxValue(1000)
@description('Upper bound of Flex Consumption instances.')
param maximumInstanceCount int = 40

@description('Run queue workers and timers in a second Function App from the same code, so webhooks answer without queue work on their tail (AzureWebJobs.<function>.Disabled in each app). azd: add the healer-worker service (docs/deploy.md).')
param splitWorkers bool = false

@description('Optional VNet integration: resource id of a subnet delegated to Microsoft.App/environments (for registries behind private endpoints or firewalls). Empty: no VNet integration.')
param vnetSubnetId string = ''

@description('Optional: resource ids of existing private DNS zones (e.g. privatelink.azurecr.io) to link to the VNet of vnetSubnetId, so registries behind private endpoints resolve privately. Empty: none.')
param privateDnsZoneIds array = []

// ------------------------------------------------------------------------------------------------ behaviour

@description('HEALER_KILL_SWITCH: true stops every action (decisions are still recorded).')
param killSwitch bool = false

@description('HEALER_DRY_RUN: true decides and records but never acts. Deployed on by default: turn off once the audit looks right.')
param dryRun bool = true

@description('HEALER_POLICY_LKG_MAX_AGE_SECONDS: how long the last-known-good policy may be used while HEALER_POLICY is unreadable (0: never).')
@minValue(0)
@maxValue(604800)
param policyLkgMaxAgeSeconds int = 3600

@secure()
@description('Operator key (stored in Key Vault as healer-operator-key; HEALER_OPERATOR_KEY references it): approvals, controls, re-arm, release and runs need it in function-key mode. Empty: set the secret later (operator routes are refused until then).')
param operatorKey string = ''

@description('HEALER_POLICY: allow/ask/deny rules per action and resource pattern. The default denies everything.')
param policy policyDocument = {
  version: 1
  default: 'deny'
  rules: []
}

@description('HEALER_ROLLBACK_TARGETS: App Service apps the rollback healer may swap ({resourceId, slot, buildMarker, healthUrl, ...}). Healer gets its custom role on each.')
param rollbackTargets rollbackTarget[] = []

@description('HEALER_ROLLBACK_RULE_MAP: alert rule name or id -> {resourceId, slot}, for rules without healer.* customProperties.')
param rollbackRuleMap object = {}

@minValue(30)
@maxValue(3600)
@description('HEALER_LEASE_SECONDS: how long one worker holds an app\'s operation lease.')
param leaseSeconds int = 300

@description('HEALER_ALERT_ACK: healers (comma-separated: rollback, downshift) that acknowledge the fired alert after acting on or refusing it. Needs Monitoring Contributor (or alerts read + changestate) on the alerts\' scope.')
param alertAck string = ''

@description('HEALER_ROLLBACK_LOGS_ENDPOINT: Log Analytics query endpoint used to re-run a log alert\'s query after a rollback.')
param rollbackLogsEndpoint string = 'https://api.loganalytics.io'

@minValue(1)
@maxValue(300)
@description('HEALER_ARM_POLL_SECONDS: fallback polling interval of ARM long-running operations.')
param armPollSeconds int = 10

@minLength(1)
@maxLength(32)
@description('HEALER_TABLE_PREFIX: prefix of Healer\'s table names (letters and digits).')
param tablePrefix string = 'healer'

@secure()
@description('HEALER_CONSOLE_SECRET (stored in Key Vault as healer-console-secret): signs the console\'s CSRF tokens. Default: a new random value per deployment.')
param consoleSecret string = newGuid()

@minValue(1024)
@maxValue(104857600)
@description('HEALER_MAX_BODY_BYTES: largest request body accepted.')
param maxBodyBytes int = 262144

@minValue(1)
@maxValue(3650)
@description('HEALER_AUDIT_RETENTION_DAYS: days of audit records kept in Table storage.')
param auditRetentionDays int = 90

@minValue(2)
@maxValue(3650)
@description('HEALER_DEDUPE_RETENTION_DAYS: days delivery dedupe records and decided approvals are kept.')
param dedupeRetentionDays int = 30

@description('HEALER_HOUSEKEEPING_SCHEDULE: NCRONTAB of the daily retention run.')
param housekeepingSchedule string = '0 17 3 * * *'

@secure()
@description('HEALER_NOTIFY_WEBHOOK_URL (stored in Key Vault): where ask/escalation notifications are POSTed. Empty: none.')
param notifyWebhookUrl string = ''

@secure()
@description('HEALER_NOTIFY_DESTINATIONS (stored in Key Vault: it holds webhook URLs): JSON list of notification destinations (teams / slack / generic) with routing rules. Empty: none.')
param notifyDestinations string = ''

@secure()
@description('HEALER_APPROVAL_LINK_SECRET (stored in Key Vault): HMAC key (32+ characters, e.g. openssl rand -hex 32) that signs the Approve/Reject links in notifications. Empty: notifications carry no links.')
param approvalLinkSecret string = ''

@description('HEALER_PUBLIC_BASE_URL: Healer\'s public base URL for approval links. Empty: https://<function app>.azurewebsites.net.')
param publicBaseUrl string = ''

// ------------------------------------------------------------------------------------------------ inbound auth

@allowed([
  'function-key'
  'entra'
])
@description('HEALER_AUTH_MODE: function-key, or entra (also require an Entra ID token: secure webhook, approvers).')
param authMode string = 'function-key'

@maxLength(36)
@description('HEALER_ENTRA_TENANT_ID. Empty: the deployment tenant.')
param entraTenantId string = ''

@description('HEALER_ENTRA_AUDIENCE: application ID URI or client id of Healer\'s app registration. Empty: secureWebhookIdentifierUri.')
param entraAudience string = ''

@description('Application (client) id of Healer\'s app registration: App Service Authentication (Easy Auth) signs operators in to the console with it (entra mode). Empty: no Easy Auth.')
param entraClientId string = ''

@description('Create Healer\'s Entra app registration (app roles, Azure Monitor\'s caller role, identifier URI, the console\'s sign-in redirect) with the Microsoft Graph Bicep extension, in entra mode (azd: HEALER_CREATE_ENTRA_APP). Its ids fill entraClientId, secureWebhookObjectId and secureWebhookIdentifierUri/entraAudience when those are empty. The deploying user needs Graph rights to create applications.')
param createEntraApp bool = false

@description('HEALER_ENTRA_JWKS_URL. Empty: the tenant\'s v2.0 discovery keys.')
param entraJwksUrl string = ''

@description('HEALER_ENTRA_ISSUERS: comma-separated. Empty: the tenant\'s v1 and v2 issuers.')
param entraIssuers string = ''

@description('HEALER_ENTRA_WEBHOOK_ROLE: app role the action group\'s token must carry.')
param entraWebhookRole string = 'ActionGroupsSecureWebhook'

@minLength(36)
@maxLength(36)
@description('HEALER_ENTRA_MONITOR_APP_ID: application id of Azure Monitor\'s secure-webhook caller.')
param entraMonitorAppId string = '461e8683-5575-4561-ac7f-899cc907d62a'

@description('HEALER_ENTRA_APPROVER_ROLE: app role a human needs to approve actions or change controls.')
param entraApproverRole string = 'Healer.Approver'

@description('HEALER_ENTRA_READER_ROLE: app role that may read the audit, approvals, controls and replication status.')
param entraReaderRole string = 'Healer.Reader'

@description('HEALER_ARM_ENDPOINT / HEALER_ARM_AUDIENCE. Empty: this cloud\'s Resource Manager.')
param armEndpoint string = ''

// ------------------------------------------------------------------------------------------------ what Healer may touch

@description('App Configuration store the downshift healer writes (App Configuration Data Owner). Empty: none.')
param appConfigurationStoreId string = ''

@description('Container registries the replication healer watches: system topic + Event Grid subscription + AcrPull on each.')
param watchedRegistryIds array = []

@description('Log Analytics workspaces Healer queries (spend, 429s, exceptions): Log Analytics Reader on each.')
param logAnalyticsWorkspaceIds array = []

@description('Classic Application Insights components Healer queries: Monitoring Reader on each.')
param appInsightsComponentIds array = []

@description('Azure OpenAI account the error-clustering healer drafts with (Cognitive Services OpenAI User). Empty: none.')
param openAiAccountId string = ''

@secure()
@description('GitHub token of the error-clustering healer, stored in Key Vault as healer-github-token. Empty: set the secret later.')
param githubToken string = ''

@secure()
@description('PEM private key of the GitHub App the error-clustering healer authenticates as (instead of githubToken), stored in Key Vault as healer-github-app-private-key. Empty: set the secret later.')
param githubAppPrivateKey string = ''

// ------------------------------------------------------------------------------------------------ replication healer

@description('HEALER_REPLICATION_REGISTRIES: registry short name -> regions that must serve each pushed image, e.g. {"myreg": ["eastus", "westeurope"]}. List the registries in watchedRegistryIds too.')
param replicationRegistries object = {}

@description('HEALER_REPLICATION_ENDPOINTS: regional registry host -> base URL overrides. Normally empty (https://<registry>.<region>.geo.azurecr.io).')
param replicationEndpoints object = {}

@minValue(60)
@maxValue(86400)
@description('HEALER_REPLICATION_DEADLINE_SECONDS: how long one wait may take before it is reported timed out.')
param replicationDeadlineSeconds int = 1800

@description('HEALER_REPLICATION_BACKOFF: re-check backoff {baseSeconds, factor, maxSeconds, minSeconds, jitter}. Empty: 2, 1.6, 30, 0.5, 0.25.')
param replicationBackoff object = {}

@description('HEALER_REPLICATION_TAG_RACE_GRACE_SECONDS: how long a replica\'s tag may name a digest Healer never saw pushed before a race is reported (older pushes are lag, newer pushes a race at once).')
@minValue(0)
@maxValue(3600)
param replicationTagRaceGraceSeconds int = 60

@description('HEALER_REPLICATION_FAIL_FAST_SECONDS: how long a replica\'s regional host must keep failing DNS before its wait fails fast, named (regional endpoints not enabled).')
@minValue(0)
@maxValue(3600)
param replicationFailFastSeconds int = 15

@description('HEALER_REPLICATION_MAX_THROTTLED_SECONDS: a replica answering HTTP 429 moves its own deadline out by the time it is throttled, up to this.')
@minValue(0)
@maxValue(86400)
param replicationMaxThrottledSeconds int = 1800

@description('HEALER_REPLICATION_TOPOLOGY_TTL_SECONDS: how long a registry\'s topology read from ARM (replicas, status, regional endpoints) is reused.')
@minValue(0)
@maxValue(86400)
param replicationTopologyTtlSeconds int = 300

@description('HEALER_REPLICATION_ACR_TENANT_ID: tenant sent in the ACR token exchange. Empty: the deployment tenant.')
param replicationAcrTenantId string = ''

@description('HEALER_REPLICATION_TOPIC_ENDPOINT: where outcome events go. Empty: Healer\'s own outcome topic (Entra auth).')
param replicationTopicEndpoint string = ''

// ------------------------------------------------------------------------------------------------ model downshift healer

@description('HEALER_DOWNSHIFT_APPS: the AI apps the downshift healer manages (resourceId, actuator, appConfigEndpoint, key, policy with the model ladder, tenants with budgets and time zones, budgetNames). See README "Model downshift".')
param downshiftApps downshiftApp[] = []

@description('HEALER_DOWNSHIFT_SCHEDULE: NCRONTAB of the spend and drift tick.')
param downshiftSchedule string = '0 */10 * * * *'

@allowed([
  'workspace'
  'classic'
])
@description('HEALER_DOWNSHIFT_SCHEMA: workspace (AppMetrics) or classic (customMetrics) for the agent.cost.usd metric.')
param downshiftSchema string = 'workspace'

@description('HEALER_DOWNSHIFT_WORKSPACE_ID: the workspace with the apps\' cost metric — its resource id (preferred: Healer gets Log Analytics Reader on it and the setting gets its Workspace ID), or its Workspace ID (GUID; then also list its resource id in logAnalyticsWorkspaceIds).')
param downshiftWorkspaceId string = ''

@description('HEALER_DOWNSHIFT_RESOURCE_ID: classic Application Insights resource id with the cost metric (also list it in appInsightsComponentIds).')
param downshiftAppInsightsId string = ''

@description('HEALER_DOWNSHIFT_LOGS_ENDPOINT: Log Analytics query endpoint.')
param downshiftLogsEndpoint string = 'https://api.loganalytics.io'

// ------------------------------------------------------------------------------------------------ error-clustering healer

@description('HEALER_ERRORS_SCHEDULE: NCRONTAB of the daily run.')
param errorsSchedule string = '0 0 6 * * *'

@allowed([
  'workspace'
  'classic'
])
@description('HEALER_ERRORS_SCHEMA: workspace (AppExceptions) or classic (exceptions).')
param errorsSchema string = 'workspace'

@description('HEALER_ERRORS_WORKSPACE_ID: the app\'s Log Analytics workspace — its resource id (preferred: Healer gets Log Analytics Reader on it and the setting gets its Workspace ID), or its Workspace ID (GUID; then also list its resource id in logAnalyticsWorkspaceIds).')
param errorsWorkspaceId string = ''

@description('HEALER_ERRORS_RESOURCE_ID: classic Application Insights resource id (also list it in appInsightsComponentIds).')
param errorsAppInsightsId string = ''

@description('HEALER_ERRORS_LOGS_ENDPOINT: Log Analytics query endpoint.')
param errorsLogsEndpoint string = 'https://api.loganalytics.io'

@description('HEALER_ERRORS_INCLUDE_TRACES: also cluster error-level traces.')
param errorsIncludeTraces bool = false

@minValue(1)
@maxValue(168)
@description('HEALER_ERRORS_WINDOW_HOURS: hours the timer run looks back.')
param errorsWindowHours int = 24

@minValue(1)
@maxValue(100000)
@description('HEALER_ERRORS_MAX_ROWS: most aggregated rows one query returns.')
param errorsMaxRows int = 5000

@minValue(0)
@maxValue(50)
@description('HEALER_ERRORS_TOP_N: groups that get a draft pull request per run.')
param errorsTopN int = 5

@minValue(1)
@maxValue(90)
@description('HEALER_ERRORS_BASELINE_DAYS: days of per-fingerprint history for new/regressed.')
param errorsBaselineDays int = 7

@description('HEALER_ERRORS_IN_APP_PREFIXES: comma-separated prefixes of in-app frames.')
param errorsInAppPrefixes string = ''

@description('HEALER_ERRORS_GITHUB_API_URL: https://<host>/api/v3 for GitHub Enterprise Server.')
param errorsGithubApiUrl string = 'https://api.github.com'

@description('HEALER_ERRORS_GITHUB_REPOSITORY: owner/name that gets the draft pull requests. Empty: no PRs; the token reference is set only when this is.')
param errorsGithubRepository string = ''

@description('HEALER_ERRORS_GITHUB_APP_ID: numeric id of a GitHub App to authenticate as instead of a token. Set with errorsGithubAppInstallationId and errorsGithubRepository: the App settings (private key reference) replace the token reference.')
param errorsGithubAppId string = ''

@description('HEALER_ERRORS_GITHUB_APP_INSTALLATION_ID: numeric id of that App\'s installation on the repository owner.')
param errorsGithubAppInstallationId string = ''

@description('HEALER_ERRORS_BASE_BRANCH. Empty: the repository\'s default branch.')
param errorsBaseBranch string = ''

@description('HEALER_ERRORS_SOURCE_REF: ref of the deployed code. Empty: the base branch.')
param errorsSourceRef string = ''

@description('HEALER_ERRORS_SOURCE_PREFIX: path prefix of the files named by stacks, e.g. src/.')
param errorsSourcePrefix string = ''

@description('HEALER_ERRORS_VERSION_DIMENSION: custom dimension with the app version. Empty: AppVersion.')
param errorsVersionDimension string = ''

@description('HEALER_ERRORS_VERSION_MAP: JSON object version -> commit sha, tag or branch. Empty: none.')
param errorsVersionMap string = ''

@description('HEALER_ERRORS_VERSION_TAGS: comma-separated tag names a version maps to ({version} is replaced).')
param errorsVersionTags string = '{version},v{version}'

@description('HEALER_ERRORS_DEPLOY_ENVIRONMENT: GitHub deployments environment correlated with first-seen times.')
param errorsDeployEnvironment string = 'production'

@allowed([
  'none'
  'azure'
  'openai'
])
@description('HEALER_ERRORS_LLM_PROVIDER: none, azure (Azure OpenAI with Healer\'s identity; list the account in openAiAccountId) or openai.')
param errorsLlmProvider string = 'none'

@description('HEALER_ERRORS_LLM_ENDPOINT: Azure OpenAI endpoint or OpenAI-compatible base URL.')
param errorsLlmEndpoint string = ''

@description('HEALER_ERRORS_LLM_MODEL: deployment (Azure) or model name.')
param errorsLlmModel string = ''

@description('HEALER_ERRORS_LLM_API_VERSION: Azure OpenAI API version.')
param errorsLlmApiVersion string = '2024-10-21'

@secure()
@description('Key of an OpenAI-compatible endpoint (provider openai only), stored in Key Vault as healer-llm-api-key.')
param errorsLlmApiKey string = ''

@description('HEALER_ERRORS_LLM_AUDIENCE: token scope for Azure OpenAI.')
param errorsLlmAudience string = 'https://cognitiveservices.azure.com/.default'

@minValue(0)
@maxValue(10000000)
@description('HEALER_ERRORS_LLM_TOKEN_BUDGET: most model tokens one run may spend.')
param errorsLlmTokenBudget int = 60000

@minValue(1)
@maxValue(600)
@description('HEALER_ERRORS_LLM_TIMEOUT_SECONDS: timeout of one model request.')
param errorsLlmTimeoutSeconds int = 60

@minValue(0)
@maxValue(10)
@description('HEALER_ERRORS_LLM_MAX_RETRIES: retries of a throttled or failed model request.')
param errorsLlmMaxRetries int = 2

// ------------------------------------------------------------------------------------------------ triggers and alerts

@description('Healer watches Healer: alert rules on its own escalations, dead letters, invalid configuration, failed notifications and stale timers.')
param enableSelfMonitoring bool = true

@description('E-mail addresses of the operators who hear about Healer\'s own trouble (ag-healer-operators).')
param operatorEmails array = []

@secure()
@description('Optional webhook for the same self-monitoring alerts (Teams workflow, pager). Empty: none.')
param operatorWebhookUrl string = ''

@description('Expected period of each timer (KQL timespan); keep in step with the schedules above.')
param timerPeriods object = {
  downshift_tick: '10m'
  errors_daily: '1d'
  housekeeping: '1d'
}

@description('Wire what needs the deployed code: action groups, alert rules, budget and Event Grid subscriptions. Set by the postdeploy hook (infra/hooks/healer_hooks.py) once the functions are deployed; keep it true afterwards.')
param wireTriggers bool = false

@description('Name of the replication healer\'s Event Grid trigger function.')
param replicationFunctionName string = 'replication_events'

@description('Route (under /api) of each alert endpoint.')
param alertRoutes object = {
  rollback: 'alerts/rollback'
  downshift: 'alerts/downshift'
  budget: 'alerts/budget'
}

@description('Per-function key of each intake function the action groups send (never the host key).')
param functionKeyName string = 'default'

@description('Secure webhook: object id of Healer\'s Entra app registration. Empty: function key only.')
param secureWebhookObjectId string = ''

@description('Secure webhook: application ID URI of Healer\'s Entra app registration.')
param secureWebhookIdentifierUri string = ''

@description('Example Http5xx metric alert on a target app (customProperties healer.target / healer.slot).')
param enableHttp5xxAlert bool = false
param http5xxTargetAppId string = ''
param http5xxSlot string = 'staging'
@minValue(1)
param http5xxThreshold int = 10

@description('Example 429-ratio log search alert split by tenant.')
param enableThrottleAlert bool = false
@description('Workspace with the target app\'s telemetry. Empty: Healer\'s own workspace.')
param throttleWorkspaceId string = ''
param throttleTargetAppId string = ''
param throttleRatioThreshold string = '0.2'
@description('429s from the app (app) or from the API Management AI gateway split by throttledBy (gateway).')
@allowed([
  'app'
  'gateway'
])
param throttleSource string = 'app'

@description('Example monthly budget on a resource group (its alerts go to the downshift healer). 0: no budget.')
@minValue(0)
param budgetAmount int = 0
param budgetResourceGroupId string = ''
@description('First month of the example budget, YYYY-MM-01 (azd: HEALER_BUDGET_START_DATE). Set it once and keep it: Cost Management rejects any change of the start date of a budget, so a moving default (utcNow) would fail every provision in a later month. Empty: no budget.')
param budgetStartDate string = ''
param budgetContactEmails array = []

// ------------------------------------------------------------------------------------------------ names

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  app: 'healer'
}
var names = {
  resourceGroup: empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
  identity: 'id-healer-${resourceToken}'
  storage: 'sthealer${resourceToken}'
  deploymentContainer: 'app-package-healer'
  logAnalytics: 'log-healer-${resourceToken}'
  applicationInsights: 'appi-healer-${resourceToken}'
  keyVault: 'kv-healer-${resourceToken}'
  plan: 'plan-healer-${resourceToken}'
  functionApp: 'func-healer-${resourceToken}'
  workerPlan: 'plan-healer-worker-${resourceToken}'
  workerApp: 'func-healer-worker-${resourceToken}'
  outcomeTopic: 'evgt-healer-${resourceToken}'
  siteOperatorRole: 'Healer site operator (${environmentName})'
}
// Healer's own app registration (createEntraApp): its identifier URI is known before it exists, so the app
// settings need no output of the registration, which itself needs the app's host name (the sign-in redirect).
var createApp = authMode == 'entra' && createEntraApp
var entraAppUniqueName = 'healer-${resourceToken}'
var webhookIdentifierUri = !empty(secureWebhookIdentifierUri) ? secureWebhookIdentifierUri : (createApp ? 'api://${tenant().tenantId}/${entraAppUniqueName}' : '')
var effectiveAudience = empty(entraAudience) ? webhookIdentifierUri : entraAudience
var resourceManager = empty(armEndpoint) ? environment().resourceManager : armEndpoint
var armUrl = endsWith(resourceManager, '/') ? substring(resourceManager, 0, length(resourceManager) - 1) : resourceManager

// ------------------------------------------------------------------------------------------------ app settings

// Every setting Healer's code reads (shared/config.py SETTINGS), one line each: adding a setting to SETTINGS
// means adding its line here (tests/infra/test_bicep.py checks both directions). Secrets only as Key Vault
// references: '@Microsoft.KeyVault(VaultName=${names.keyVault};SecretName=<secret>)'.
// Ready for settings of healers still landing: the outcome topic endpoint (outcomeTopic.outputs.endpoint),
// the App Configuration store (appConfigurationStoreId), Healer's workspace (monitoring.outputs.workspaceId).
var healerSettings = {
  AzureWebJobsStorage__accountName: storage.outputs.name
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  HEALER_TABLE_PREFIX: tablePrefix
  AZURE_CLIENT_ID: identity.outputs.clientId
  HEALER_ARM_ENDPOINT: armUrl
  HEALER_ARM_AUDIENCE: armUrl
  HEALER_ARM_POLL_SECONDS: string(armPollSeconds)
  HEALER_ALERTS_ENDPOINT: armUrl
  HEALER_ALERT_ACK: alertAck
  HEALER_AUTH_MODE: authMode
  HEALER_ENTRA_TENANT_ID: empty(entraTenantId) ? tenant().tenantId : entraTenantId
  HEALER_ENTRA_AUDIENCE: effectiveAudience
  HEALER_ENTRA_JWKS_URL: entraJwksUrl
  HEALER_ENTRA_ISSUERS: entraIssuers
  HEALER_ENTRA_WEBHOOK_ROLE: entraWebhookRole
  HEALER_ENTRA_MONITOR_APP_ID: entraMonitorAppId
  HEALER_ENTRA_APPROVER_ROLE: entraApproverRole
  HEALER_ENTRA_READER_ROLE: entraReaderRole
  HEALER_MAX_BODY_BYTES: string(maxBodyBytes)
  HEALER_EASY_AUTH: (authMode == 'entra') ? 'true' : 'false'
  HEALER_CONSOLE_SECRET: '@Microsoft.KeyVault(VaultName=${names.keyVault};SecretName=healer-console-secret)'
  HEALER_KILL_SWITCH: killSwitch ? 'true' : 'false'
  HEALER_DRY_RUN: dryRun ? 'true' : 'false'
  HEALER_POLICY: string(policy)
  HEALER_POLICY_LKG_MAX_AGE_SECONDS: string(policyLkgMaxAgeSeconds)
  HEALER_OPERATOR_KEY: '@Microsoft.KeyVault(VaultName=${names.keyVault};SecretName=healer-operator-key)'
  HEALER_NOTIFY_WEBHOOK_URL: empty(notifyWebhookUrl) ? '' : '@Microsoft.KeyVault(VaultName=${names.keyVault};SecretName=healer-notify-webhook-url)'
  HEALER_NOTIFY_DESTINATIONS: empty(notifyDestinations) ? '' : '@Microsoft.KeyVault(VaultName=${names.keyVault};SecretName=healer-notify-destinations)'
  HEALER_APPROVAL_LINK_SECRET: empty(approvalLinkSecret) ? '' : '@Microsoft.KeyVault(VaultName=${names.keyVault};SecretName=healer-approval-link-secret)'
  HEALER_PUBLIC_BASE_URL: empty(publicBaseUrl) ? 'https://${names.functionApp}.azurewebsites.net' : publicBaseUrl
  HEALER_AUDIT_RETENTION_DAYS: string(auditRetentionDays)
  HEALER_DEDUPE_RETENTION_DAYS: string(dedupeRetentionDays)
  HEALER_HOUSEKEEPING_SCHEDULE: housekeepingSchedule
  HEALER_ROLLBACK_TARGETS: string(rollbackTargets)
  HEALER_ROLLBACK_RULE_MAP: string(rollbackRuleMap)
  HEALER_LEASE_SECONDS: string(leaseSeconds)
  HEALER_ROLLBACK_LOGS_ENDPOINT: rollbackLogsEndpoint
  HEALER_DOWNSHIFT_APPS: string(downshiftApps)
  HEALER_DOWNSHIFT_SCHEDULE: downshiftSchedule
  HEALER_DOWNSHIFT_SCHEMA: downshiftSchema
  HEALER_DOWNSHIFT_WORKSPACE_ID: startsWith(downshiftWorkspaceId, '/') ? reference(downshiftWorkspaceId, '2023-09-01').customerId : downshiftWorkspaceId
  HEALER_DOWNSHIFT_RESOURCE_ID: downshiftAppInsightsId
  HEALER_DOWNSHIFT_LOGS_ENDPOINT: downshiftLogsEndpoint
  HEALER_REPLICATION_REGISTRIES: string(replicationRegistries)
  HEALER_REPLICATION_ENDPOINTS: string(replicationEndpoints)
  HEALER_REPLICATION_DEADLINE_SECONDS: string(replicationDeadlineSeconds)
  HEALER_REPLICATION_BACKOFF: string(replicationBackoff)
  HEALER_REPLICATION_TAG_RACE_GRACE_SECONDS: string(replicationTagRaceGraceSeconds)
  HEALER_REPLICATION_FAIL_FAST_SECONDS: string(replicationFailFastSeconds)
  HEALER_REPLICATION_MAX_THROTTLED_SECONDS: string(replicationMaxThrottledSeconds)
  HEALER_REPLICATION_TOPOLOGY_TTL_SECONDS: string(replicationTopologyTtlSeconds)
  HEALER_REPLICATION_ACR_TENANT_ID: empty(replicationAcrTenantId) ? tenant().tenantId : replicationAcrTenantId
  HEALER_REPLICATION_TOPIC_ENDPOINT: empty(replicationTopicEndpoint) ? outcomeTopic.outputs.endpoint : replicationTopicEndpoint
  HEALER_REPLICATION_TOPIC_KEY: ''
  HEALER_ERRORS_SCHEDULE: errorsSchedule
  HEALER_ERRORS_SCHEMA: errorsSchema
  HEALER_ERRORS_WORKSPACE_ID: startsWith(errorsWorkspaceId, '/') ? reference(errorsWorkspaceId, '2023-09-01').customerId : errorsWorkspaceId
  HEALER_ERRORS_RESOURCE_ID: errorsAppInsightsId
  HEALER_ERRORS_LOGS_ENDPOINT: errorsLogsEndpoint
  HEALER_ERRORS_INCLUDE_TRACES: errorsIncludeTraces ? 'true' : 'false'
  HEALER_ERRORS_WINDOW_HOURS: string(errorsWindowHours)
  HEALER_ERRORS_MAX_ROWS: string(errorsMaxRows)
  HEALER_ERRORS_TOP_N: string(errorsTopN)
  HEALER_ERRORS_BASELINE_DAYS: string(errorsBaselineDays)
  HEALER_ERRORS_IN_APP_PREFIXES: errorsInAppPrefixes
  HEALER_ERRORS_GITHUB_API_URL: errorsGithubApiUrl
  HEALER_ERRORS_GITHUB_REPOSITORY: errorsGithubRepository
  HEALER_ERRORS_GITHUB_TOKEN: (empty(errorsGithubRepository) || !empty(errorsGithubAppId)) ? '' : '@Microsoft.KeyVault(VaultName=${names.keyVault};SecretName=healer-github-token)'
  HEALER_ERRORS_GITHUB_APP_ID: empty(errorsGithubRepository) ? '' : errorsGithubAppId
  HEALER_ERRORS_GITHUB_APP_INSTALLATION_ID: empty(errorsGithubRepository) ? '' : errorsGithubAppInstallationId
  HEALER_ERRORS_GITHUB_APP_PRIVATE_KEY: (empty(errorsGithubRepository) || empty(errorsGithubAppId)) ? '' : '@Microsoft.KeyVault(VaultName=${names.keyVault};SecretName=healer-github-app-private-key)'
  HEALER_ERRORS_BASE_BRANCH: errorsBaseBranch
  HEALER_ERRORS_SOURCE_REF: errorsSourceRef
  HEALER_ERRORS_SOURCE_PREFIX: errorsSourcePrefix
  HEALER_ERRORS_VERSION_DIMENSION: errorsVersionDimension
  HEALER_ERRORS_VERSION_MAP: errorsVersionMap
  HEALER_ERRORS_VERSION_TAGS: errorsVersionTags
  HEALER_ERRORS_DEPLOY_ENVIRONMENT: errorsDeployEnvironment
  HEALER_ERRORS_LLM_PROVIDER: errorsLlmProvider
  HEALER_ERRORS_LLM_ENDPOINT: errorsLlmEndpoint
  HEALER_ERRORS_LLM_MODEL: errorsLlmModel
  HEALER_ERRORS_LLM_API_VERSION: errorsLlmApiVersion
  HEALER_ERRORS_LLM_API_KEY: (errorsLlmProvider == 'openai') ? '@Microsoft.KeyVault(VaultName=${names.keyVault};SecretName=healer-llm-api-key)' : ''
  HEALER_ERRORS_LLM_AUDIENCE: errorsLlmAudience
  HEALER_ERRORS_LLM_TOKEN_BUDGET: string(errorsLlmTokenBudget)
  HEALER_ERRORS_LLM_TIMEOUT_SECONDS: string(errorsLlmTimeoutSeconds)
  HEALER_ERRORS_LLM_MAX_RETRIES: string(errorsLlmMaxRetries)
  APPLICATIONINSIGHTS_CONNECTION_STRING: '@Microsoft.KeyVault(VaultName=${names.keyVault};SecretName=appinsights-connection-string)'
}

// Read by the Functions host and the Azure SDKs, not by Healer's code.
// With splitWorkers, the main app serves webhooks and HTTP APIs only; its queue workers and timers are switched off
// with the host's per-function setting and run in the worker app instead (same code, same identity and storage).
var workerFunctionsOff = splitWorkers ? 'true' : 'false'
var platformSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
  'AzureWebJobs.rollback_worker.Disabled': workerFunctionsOff
  'AzureWebJobs.rollback_dead_letter.Disabled': workerFunctionsOff
  'AzureWebJobs.housekeeping.Disabled': workerFunctionsOff
  'AzureWebJobs.downshift_tick.Disabled': workerFunctionsOff
  'AzureWebJobs.downshift_worker.Disabled': workerFunctionsOff
  'AzureWebJobs.downshift_dead_letter.Disabled': workerFunctionsOff
  'AzureWebJobs.replication_worker.Disabled': workerFunctionsOff
  'AzureWebJobs.replication_dead_letter.Disabled': workerFunctionsOff
  'AzureWebJobs.errors_daily.Disabled': workerFunctionsOff
  'AzureWebJobs.errors_worker.Disabled': workerFunctionsOff
  'AzureWebJobs.errors_dead_letter.Disabled': workerFunctionsOff
  'AzureWebJobs.notify_worker.Disabled': workerFunctionsOff
  'AzureWebJobs.notify_dead_letter.Disabled': workerFunctionsOff
}
var workerAppSwitches = {
  'AzureWebJobs.rollback_alert.Disabled': 'true'
  'AzureWebJobs.rollback_rearm.Disabled': 'true'
  'AzureWebJobs.audit_list.Disabled': 'true'
  'AzureWebJobs.approvals_list.Disabled': 'true'
  'AzureWebJobs.approvals_decide.Disabled': 'true'
  'AzureWebJobs.controls_get.Disabled': 'true'
  'AzureWebJobs.controls_set.Disabled': 'true'
  'AzureWebJobs.downshift_alert.Disabled': 'true'
  'AzureWebJobs.downshift_budget.Disabled': 'true'
  'AzureWebJobs.downshift_release.Disabled': 'true'
  'AzureWebJobs.replication_events.Disabled': 'true'
  'AzureWebJobs.replication_status.Disabled': 'true'
  'AzureWebJobs.errors_run.Disabled': 'true'
  'AzureWebJobs.console_page.Disabled': 'true'
  'AzureWebJobs.console_asset.Disabled': 'true'
  'AzureWebJobs.session.Disabled': 'true'
  'AzureWebJobs.openapi.Disabled': 'true'
  'AzureWebJobs.replication_waits.Disabled': 'true'
  'AzureWebJobs.approvals_all.Disabled': 'true'
  'AzureWebJobs.health.Disabled': 'true'
  'AzureWebJobs.approval_link.Disabled': 'true'
  'AzureWebJobs.rollback_worker.Disabled': 'false'
  'AzureWebJobs.rollback_dead_letter.Disabled': 'false'
  'AzureWebJobs.housekeeping.Disabled': 'false'
  'AzureWebJobs.downshift_tick.Disabled': 'false'
  'AzureWebJobs.downshift_worker.Disabled': 'false'
  'AzureWebJobs.downshift_dead_letter.Disabled': 'false'
  'AzureWebJobs.replication_worker.Disabled': 'false'
  'AzureWebJobs.replication_dead_letter.Disabled': 'false'
  'AzureWebJobs.errors_daily.Disabled': 'false'
  'AzureWebJobs.errors_worker.Disabled': 'false'
  'AzureWebJobs.errors_dead_letter.Disabled': 'false'
  'AzureWebJobs.notify_worker.Disabled': 'false'
  'AzureWebJobs.notify_dead_letter.Disabled': 'false'
}

// ------------------------------------------------------------------------------------------------ scopes Healer gets roles on

// One source: the apps in rollbackTargets and downshiftApps are both the settings (HEALER_ROLLBACK_TARGETS,
// HEALER_DOWNSHIFT_APPS) and the scopes of Healer's site-operator role; no second list to keep in step.
var targetAppIds = union(map(rollbackTargets, t => string(t.resourceId)), map(downshiftApps, a => string(a.resourceId)))
var targetAppScopes = union(map(targetAppIds, id => join(take(split(id, '/'), 5), '/')), [])
// One source for workspaces too: a workspace named by resource id in downshiftWorkspaceId / errorsWorkspaceId
// gets the reader role, and its Workspace ID (GUID) goes into the setting; no need to list it twice.
var queriedWorkspaceIds = union(logAnalyticsWorkspaceIds, filter([downshiftWorkspaceId, errorsWorkspaceId], id => startsWith(id, '/')))
var roleTargets = concat(
  map(targetAppIds, id => { kind: 'site', id: id }),
  map(watchedRegistryIds, id => { kind: 'registry', id: id }),
  map(queriedWorkspaceIds, id => { kind: 'workspace', id: id }),
  map(appInsightsComponentIds, id => { kind: 'appInsights', id: id }),
  empty(appConfigurationStoreId) ? [] : [ { kind: 'appConfiguration', id: appConfigurationStoreId } ],
  empty(openAiAccountId) ? [] : [ { kind: 'openAi', id: openAiAccountId } ]
)

// ------------------------------------------------------------------------------------------------ resources

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: names.resourceGroup
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'healer-identity'
  scope: rg
  params: {
    name: names.identity
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'healer-storage'
  scope: rg
  params: {
    name: names.storage
    location: location
    tags: tags
    deploymentContainerName: names.deploymentContainer
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'healer-monitoring'
  scope: rg
  params: {
    logAnalyticsName: names.logAnalytics
    applicationInsightsName: names.applicationInsights
    location: location
    tags: tags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'healer-keyvault'
  scope: rg
  params: {
    name: names.keyVault
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    notifyWebhookUrl: notifyWebhookUrl
    notifyDestinations: notifyDestinations
    approvalLinkSecret: approvalLinkSecret
    githubToken: githubToken
    githubAppPrivateKey: githubAppPrivateKey
    llmApiKey: errorsLlmApiKey
    operatorKey: operatorKey
    consoleSecret: consoleSecret
  }
}

module outcomeTopic 'modules/eventgrid.bicep' = {
  name: 'healer-outcome-topic'
  scope: rg
  params: {
    name: names.outcomeTopic
    location: location
    tags: tags
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'healer-rbac'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    outcomeTopicName: outcomeTopic.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'healer-functionapp'
  scope: rg
  dependsOn: [
    rbac
  ]
  params: {
    name: names.functionApp
    planName: names.plan
    location: location
    tags: tags
    identityId: identity.outputs.id
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: names.deploymentContainer
    appSettings: union(platformSettings, healerSettings)
    pythonVersion: pythonVersion
    maximumInstanceCount: maximumInstanceCount
    vnetSubnetId: vnetSubnetId
  }
}

// Healer's Entra app registration (Microsoft Graph Bicep extension): after the Function App (its redirect URI
// names the app's host), before App Service Authentication (which needs its client id).
module entraApp 'modules/entra-app.bicep' = if (createApp) {
  name: 'healer-entra-app'
  scope: rg
  params: {
    uniqueName: entraAppUniqueName
    displayName: 'Healer (${environmentName})'
    identifierUri: 'api://${tenant().tenantId}/${entraAppUniqueName}'
    functionHostName: functionApp.outputs.defaultHostName
    webhookRole: entraWebhookRole
    approverRole: entraApproverRole
    readerRole: entraReaderRole
    monitorAppId: entraMonitorAppId
  }
}

var effectiveClientId = !empty(entraClientId) ? entraClientId : (createApp ? entraApp.outputs.clientId : '')
var effectiveWebhookObjectId = !empty(secureWebhookObjectId) ? secureWebhookObjectId : (createApp ? entraApp.outputs.objectId : '')

// The console's sign-in (App Service Authentication), in entra mode with a client id.
module functionAppAuth 'modules/functionapp-auth.bicep' = if (authMode == 'entra') {
  name: 'healer-functionapp-auth'
  scope: rg
  params: {
    siteName: functionApp.outputs.name
    easyAuthClientId: effectiveClientId
    easyAuthTenantId: empty(entraTenantId) ? tenant().tenantId : entraTenantId
    easyAuthAudiences: empty(effectiveAudience) ? [] : [effectiveAudience]
  }
}

module workerApp 'modules/functionapp.bicep' = if (splitWorkers) {
  name: 'healer-functionapp-worker'
  scope: rg
  dependsOn: [
    rbac
  ]
  params: {
    name: names.workerApp
    planName: names.workerPlan
    location: location
    tags: tags
    serviceName: 'healer-worker'
    identityId: identity.outputs.id
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: names.deploymentContainer
    appSettings: union(platformSettings, healerSettings, workerAppSwitches)
    pythonVersion: pythonVersion
    maximumInstanceCount: maximumInstanceCount
    vnetSubnetId: vnetSubnetId  // the replication worker probes registries that may be private
  }
}

// Registries behind private endpoints: link their private DNS zones to Healer's VNet (only with vnetSubnetId).
module privateDnsLinks 'modules/private-dns-link.bicep' = [for (zoneId, i) in (empty(vnetSubnetId) ? [] : privateDnsZoneIds): {
  name: 'healer-dns-link-${i}'
  scope: resourceGroup(split(zoneId, '/')[2], split(zoneId, '/')[4])
  params: {
    zoneName: last(split(zoneId, '/'))
    vnetId: join(take(split(vnetSubnetId, '/'), 9), '/')
    linkName: 'healer-${environmentName}'
    tags: tags
  }
}]

module workbook 'modules/workbook.bicep' = {
  name: 'healer-workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    workspaceId: monitoring.outputs.workspaceId
  }
}

module siteOperatorRole 'modules/rbac-role.bicep' = if (!empty(targetAppIds)) {
  name: 'healer-site-operator-role'
  params: {
    roleName: names.siteOperatorRole
    assignableScopes: targetAppScopes
  }
}

module roleOnTarget 'modules/rbac-target.bicep' = [for (t, i) in roleTargets: {
  name: 'healer-role-${t.kind}-${i}'
  scope: resourceGroup(split(t.id, '/')[2], split(t.id, '/')[4])
  params: {
    kind: t.kind
    resourceName: last(split(t.id, '/'))
    principalId: identity.outputs.principalId
    siteOperatorRoleId: (t.kind == 'site') ? siteOperatorRole.outputs.id : ''
  }
}]

module registryEvents 'modules/eventgrid-registry.bicep' = [for (id, i) in watchedRegistryIds: {
  name: 'healer-registry-events-${i}'
  scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
  params: {
    registryName: last(split(id, '/'))
    functionAppId: functionApp.outputs.id
    functionName: replicationFunctionName
    subscribe: wireTriggers
    tags: tags
  }
}]

module alerts 'modules/alerts.bicep' = if (wireTriggers) {
  name: 'healer-alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    functionAppName: functionApp.outputs.name
    functionHostName: functionApp.outputs.defaultHostName
    routes: alertRoutes
    functionKeyName: functionKeyName
    secureWebhookObjectId: (authMode == 'entra') ? effectiveWebhookObjectId : ''
    secureWebhookIdentifierUri: webhookIdentifierUri
    enableHttp5xxAlert: enableHttp5xxAlert
    http5xxTargetAppId: http5xxTargetAppId
    http5xxSlot: http5xxSlot
    http5xxThreshold: http5xxThreshold
    enableThrottleAlert: enableThrottleAlert
    throttleWorkspaceId: empty(throttleWorkspaceId) ? monitoring.outputs.workspaceId : throttleWorkspaceId
    throttleTargetAppId: throttleTargetAppId
    throttleRatioThreshold: throttleRatioThreshold
    throttleSource: throttleSource
  }
}

module selfMonitor 'modules/selfmonitor.bicep' = if (enableSelfMonitoring) {
  name: 'healer-selfmonitor'
  scope: rg
  params: {
    location: location
    tags: tags
    workspaceId: monitoring.outputs.workspaceId
    operatorEmails: operatorEmails
    operatorWebhookUrl: operatorWebhookUrl
    timerPeriods: timerPeriods
  }
}

module budget 'modules/budget.bicep' = if (wireTriggers && budgetAmount > 0 && !empty(budgetResourceGroupId) && !empty(budgetStartDate)) {
  name: 'healer-budget'
  scope: resourceGroup(split(budgetResourceGroupId, '/')[2], split(budgetResourceGroupId, '/')[4])
  params: {
    amount: budgetAmount
    startDate: budgetStartDate
    actionGroupId: alerts.outputs.budgetActionGroupId
    contactEmails: budgetContactEmails
  }
}

// ------------------------------------------------------------------------------------------------ outputs

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output HEALER_API_BASE_URL string = 'https://${functionApp.outputs.defaultHostName}/api'
output HEALER_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output HEALER_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output HEALER_OUTCOME_TOPIC_ID string = outcomeTopic.outputs.id
output HEALER_OUTCOME_TOPIC_ENDPOINT string = outcomeTopic.outputs.endpoint
output HEALER_KEY_VAULT_NAME string = keyVault.outputs.name
output HEALER_WORKSPACE_ID string = monitoring.outputs.workspaceId
output HEALER_WORKBOOK_ID string = workbook.outputs.id
output HEALER_OPERATORS_ACTION_GROUP_ID string = enableSelfMonitoring ? selfMonitor.outputs.operatorsActionGroupId : ''
output HEALER_SITE_OPERATOR_ROLE_ID string = empty(targetAppIds) ? '' : siteOperatorRole.outputs.id
output HEALER_ROLLBACK_ACTION_GROUP_ID string = wireTriggers ? alerts.outputs.rollbackActionGroupId : ''
output HEALER_DOWNSHIFT_ACTION_GROUP_ID string = wireTriggers ? alerts.outputs.downshiftActionGroupId : ''
output HEALER_BUDGET_ACTION_GROUP_ID string = wireTriggers ? alerts.outputs.budgetActionGroupId : ''
output HEALER_ENTRA_CLIENT_ID string = (authMode == 'entra') ? effectiveClientId : ''
output HEALER_ENTRA_APP_OBJECT_ID string = (authMode == 'entra') ? effectiveWebhookObjectId : ''
output HEALER_ENTRA_IDENTIFIER_URI string = webhookIdentifierUri
