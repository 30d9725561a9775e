// Workbook over Healer's audit telemetry (AppTraces from logger healer.audit with healer.* dimensions, and the
// healer.decisions / healer.replication.lag metrics in AppMetrics). Queries live in ../kql and are validated offline.
param location string
param tags object = {}
param workspaceId string
param displayName string = 'Healer audit'

var tile = {
  size: 0
  queryType: 0
  resourceType: 'microsoft.operationalinsights/workspaces'
  timeContext: {
    durationMs: 604800000
  }
}

var workbook = {
  version: 'Notebook/1.0'
  items: [
    {
      type: 1
      name: 'title'
      content: {
        json: '## Healer\nEvery decision Healer made, from its audit records. Outcomes: acted, dry-run, pending (ask), approved, rejected, refused, skipped, ignored, duplicate, failed, escalated, dead-letter, recorded.'
      }
    }
    {
      type: 3
      name: 'decisions'
      content: union(tile, {
        version: 'KqlItem/1.0'
        title: 'Decisions by healer and outcome'
        query: loadTextContent('../kql/workbook-decisions.kql')
        visualization: 'table'
      })
    }
    {
      type: 3
      name: 'decisions-trend'
      content: union(tile, {
        version: 'KqlItem/1.0'
        title: 'Decisions over time'
        query: loadTextContent('../kql/workbook-decisions-trend.kql')
        visualization: 'timechart'
      })
    }
    {
      type: 3
      name: 'rollbacks'
      content: union(tile, {
        version: 'KqlItem/1.0'
        title: 'Rollbacks'
        query: loadTextContent('../kql/workbook-rollbacks.kql')
        visualization: 'table'
      })
    }
    {
      type: 3
      name: 'downshift'
      content: union(tile, {
        version: 'KqlItem/1.0'
        title: 'Downshift state per tenant'
        query: loadTextContent('../kql/workbook-downshift.kql')
        visualization: 'table'
      })
    }
    {
      type: 3
      name: 'replication-lag'
      content: union(tile, {
        version: 'KqlItem/1.0'
        title: 'Replication lag per region (seconds)'
        query: loadTextContent('../kql/workbook-replication-lag.kql')
        visualization: 'table'
      })
    }
    {
      type: 3
      name: 'prs'
      content: union(tile, {
        version: 'KqlItem/1.0'
        title: 'Pull requests drafted'
        query: loadTextContent('../kql/workbook-prs.kql')
        visualization: 'barchart'
      })
    }
    {
      type: 1
      name: 'health-title'
      content: {
        json: '## Healer\'s own health\nWhat the self-monitoring alerts (ag-healer-operators) fire on: escalations, dead letters, invalid configuration, failed notifications, and when each timer last ran. `GET /api/health` shows the live view.'
      }
    }
    {
      type: 3
      name: 'health-trouble'
      content: union(tile, {
        version: 'KqlItem/1.0'
        title: 'Escalations, dead letters, invalid configuration, failed notifications'
        query: loadTextContent('../kql/workbook-health.kql')
        visualization: 'barchart'
      })
    }
    {
      type: 3
      name: 'health-timers'
      content: union(tile, {
        version: 'KqlItem/1.0'
        title: 'Timers: last run'
        query: loadTextContent('../kql/workbook-timers.kql')
        visualization: 'table'
      })
    }
  ]
  fallbackResourceIds: [
    workspaceId
  ]
  '$schema': 'https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json'
}

resource book 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, 'healer-audit-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: workspaceId
    serializedData: string(workbook)
    version: '1.0'
  }
}

output id string = book.id
