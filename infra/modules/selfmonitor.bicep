// Healer watches Healer: log search alert rules on Healer's own telemetry (escalations, dead letters, invalid
// configuration, notification failures, a timer that stopped running), routed to an operators' action group.
// The queries live in ../kql (validated offline against the workspace schema, and run against the Log Analytics
// stand-in over telemetry Healer produced, in tests/infra/test_selfmonitor.py). Log alerts see at most their window
// (2 days at most), so the timers rule looks back 2 days: a timer with no run in that window counts as stale.
param location string
param tags object = {}
@description('Workspace holding Healer\'s own telemetry (its workspace-based Application Insights).')
param workspaceId string
@description('E-mail addresses of the operators who hear about Healer\'s own trouble.')
param operatorEmails array = []
@description('Optional webhook (Teams workflow, pager, Logic App) for the same alerts. Empty: none.')
@secure()
param operatorWebhookUrl string = ''
@description('Expected period of each timer, as a KQL timespan (the alert fires after twice the period without a run).')
param timerPeriods object = {
  downshift_tick: '10m'
  errors_daily: '1d'
  housekeeping: '1d'
}

resource operators 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-healer-operators'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'healer-ops'
    enabled: true
    emailReceivers: [for (address, i) in operatorEmails: {
      name: 'operator-${i}'
      emailAddress: address
      useCommonAlertSchema: true
    }]
    webhookReceivers: empty(operatorWebhookUrl) ? [] : [
      {
        name: 'operators-webhook'
        serviceUri: operatorWebhookUrl
        useCommonAlertSchema: true
      }
    ]
  }
}

var timersQuery = replace(replace(replace(loadTextContent('../kql/self-timers-stale.kql'),
  '"downshift_tick", 10m,', '"downshift_tick", ${timerPeriods.downshift_tick},'),
  '"errors_daily", 1d,', '"errors_daily", ${timerPeriods.errors_daily},'),
  '"housekeeping", 1d,', '"housekeeping", ${timerPeriods.housekeeping},')

var rules = [
  {
    key: 'escalations'
    title: 'Healer escalated to a human'
    description: 'A healer stopped and handed over (a swap it could not verify, an action it must not retry). See the audit record in the alert\'s rows.'
    severity: 1
    query: loadTextContent('../kql/self-escalations.kql')
    frequency: 'PT5M'
    window: 'PT5M'
  }
  {
    key: 'dead-letters'
    title: 'Healer dead-lettered work'
    description: 'A work message could not be processed and was dead-lettered (audited, never dropped).'
    severity: 2
    query: loadTextContent('../kql/self-dead-letters.kql')
    frequency: 'PT5M'
    window: 'PT5M'
  }
  {
    key: 'config-invalid'
    title: 'Healer configuration is invalid'
    description: 'Healer acts on nothing until its configuration is fixed: GET /api/health names each broken setting.'
    severity: 1
    query: loadTextContent('../kql/self-config-invalid.kql')
    frequency: 'PT5M'
    window: 'PT15M'
  }
  {
    key: 'notify-failures'
    title: 'Healer could not deliver a notification'
    description: 'A notification failed after its retries: the humans it was for may not know what Healer did.'
    severity: 2
    query: loadTextContent('../kql/self-notify-failures.kql')
    frequency: 'PT5M'
    window: 'PT15M'
  }
  {
    key: 'timers-stale'
    title: 'A Healer timer has stopped running'
    description: 'A timer (downshift tick, daily error clustering, housekeeping) has not run for twice its period.'
    severity: 2
    query: timersQuery
    frequency: 'PT1H'
    window: 'P2D'
  }
]

resource alerts 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for r in rules: {
  name: 'healer-self-${r.key}'
  location: location
  tags: tags
  properties: {
    displayName: r.title
    description: r.description
    severity: r.severity
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: r.frequency
    windowSize: r.window
    criteria: {
      allOf: [
        {
          query: r.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [
        operators.id
      ]
    }
  }
}]

output operatorsActionGroupId string = operators.id
