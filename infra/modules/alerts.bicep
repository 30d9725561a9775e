// Azure Monitor → Healer: one action group per Healer endpoint (common alert schema; function key, plus an Entra
// token when the secure webhook is on) and example alert rules, each off unless its parameter turns it on.
// Needs Healer's code deployed first: the function key is read from the running app (listKeys).
param location string
param tags object = {}
param functionAppName string
param functionHostName string
@description('Route (under /api) of each Healer alert endpoint.')
param routes object
@description('Name of the host function key the action groups send (create one per caller to rotate separately).')
param functionKeyName string = 'default'
@description('Secure webhook: Entra application object id of Healer\'s app registration. Empty: key only.')
param secureWebhookObjectId string = ''
@description('Secure webhook: application ID URI of Healer\'s app registration.')
param secureWebhookIdentifierUri string = ''
param tenantId string = tenant().tenantId

@description('Example Http5xx metric alert on a target app, delivered to the rollback healer.')
param enableHttp5xxAlert bool = false
param http5xxTargetAppId string = ''
param http5xxSlot string = 'staging'
param http5xxThreshold int = 10

@description('Example 429-ratio log search alert split by tenant, delivered to the downshift healer.')
param enableThrottleAlert bool = false
@description('Workspace holding the target app\'s telemetry (workspace-based Application Insights).')
param throttleWorkspaceId string = ''
param throttleTargetAppId string = ''
@description('Ratio of throttled calls (0-1) above which a tenant is downshifted.')
param throttleRatioThreshold string = '0.2'
@description('Where the 429s are read: app (the app\'s own dependency calls: one rule) or gateway (API Management\'s AI gateway logging: one rule for the model\'s 429s, which downshift, and one for the gateway\'s own token limit, a quota Healer only reports; each tells Healer which in healer.throttledBy).')
@allowed([
  'app'
  'gateway'
])
param throttleSource string = 'app'

var throttleKinds = throttleSource == 'gateway' ? [
  'backend'
  'gateway'
] : [
  'app'
]
var throttleRules = enableThrottleAlert && !empty(throttleWorkspaceId) ? throttleKinds : []
var functionKey = listKeys('${resourceId('Microsoft.Web/sites', functionAppName)}/host/default', '2024-04-01').functionKeys[functionKeyName]
var secure = !empty(secureWebhookObjectId)
var receivers = [
  {
    key: 'rollback'
    shortName: 'healer-rb'
  }
  {
    key: 'downshift'
    shortName: 'healer-ds'
  }
  {
    key: 'budget'
    shortName: 'healer-bdg'
  }
]

resource groups 'Microsoft.Insights/actionGroups@2023-01-01' = [for r in receivers: {
  name: 'ag-healer-${r.key}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: r.shortName
    enabled: true
    webhookReceivers: [
      {
        name: 'healer-${r.key}'
        serviceUri: 'https://${functionHostName}/api/${routes[r.key]}?code=${functionKey}'
        useCommonAlertSchema: true
        useAadAuth: secure
        objectId: secure ? secureWebhookObjectId : null
        identifierUri: secure ? secureWebhookIdentifierUri : null
        tenantId: secure ? tenantId : null
      }
    ]
  }
}]

resource http5xx 'Microsoft.Insights/metricAlerts@2018-03-01' = if (enableHttp5xxAlert && !empty(http5xxTargetAppId)) {
  name: 'healer-http5xx-${last(split(http5xxTargetAppId, '/'))}'
  location: 'global'
  tags: tags
  properties: {
    description: 'Server errors on the production slot: the rollback healer swaps the previous build back.'
    severity: 1
    enabled: true
    scopes: [
      http5xxTargetAppId
    ]
    evaluationFrequency: 'PT1M'
    windowSize: 'PT5M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'Http5xx'
          metricNamespace: 'Microsoft.Web/sites'
          metricName: 'Http5xx'
          operator: 'GreaterThan'
          threshold: http5xxThreshold
          timeAggregation: 'Total'
        }
      ]
    }
    autoMitigate: true
    actions: [
      {
        actionGroupId: groups[0].id
        webHookProperties: {
          'healer.target': http5xxTargetAppId
          'healer.slot': http5xxSlot
        }
      }
    ]
  }
}

resource throttle 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for source in throttleRules: {
  name: source == 'app' ? 'healer-429-ratio-by-tenant' : 'healer-429-ratio-by-tenant-${source}'
  location: location
  tags: tags
  properties: {
    displayName: source == 'app' ? 'Healer: 429 ratio by tenant' : 'Healer: 429 ratio by tenant (${source})'
    description: source == 'gateway' ? 'The AI gateway\'s own token limit throttles a tenant: a quota, not capacity (Healer reports it, no model switch).' : 'Sustained throttling of model calls per tenant: the downshift healer moves the tenant one rung down.'
    severity: 2
    enabled: true
    scopes: [
      throttleWorkspaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: source == 'app' ? loadTextContent('../kql/ratio-429-by-tenant.kql') : (source == 'gateway' ? loadTextContent('../kql/gateway-quota-429-by-tenant.kql') : loadTextContent('../kql/gateway-backend-429-by-tenant.kql'))
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'ratio'
          dimensions: [
            {
              name: 'tenant'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: json(throttleRatioThreshold)
          failingPeriods: {
            numberOfEvaluationPeriods: 3
            minFailingPeriodsToAlert: 2
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        groups[1].id
      ]
      customProperties: {
        'healer.target': throttleTargetAppId
        'healer.throttledBy': source == 'gateway' ? 'gateway' : 'backend'
      }
    }
  }
}]

output rollbackActionGroupId string = groups[0].id
output downshiftActionGroupId string = groups[1].id
output budgetActionGroupId string = groups[2].id
