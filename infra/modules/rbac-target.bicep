// One role assignment for Healer on one resource outside Healer's resource group (deploy this module into the
// resource's own resource group). `kind` picks the resource type and the role; nothing wider is ever assigned.
@allowed([
  'site'
  'registry'
  'workspace'
  'appConfiguration'
  'openAi'
  'appInsights'
])
param kind string
@description('Name of the resource (last segment of its id).')
param resourceName string
param principalId string
@description('Resource id of Healer\'s custom site-operator role (kind site only).')
param siteOperatorRoleId string = ''

var roles = {
  acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d'
  reader: 'acdd72a7-3385-43ef-8e0b-b3a4e0e0f4d4'
  logAnalyticsReader: '73c42c96-874c-492b-b04d-ab87d138a893'
  appConfigurationDataOwner: '5ae67dd6-50cb-40e7-96ff-dc2bfa4b606b'
  cognitiveServicesOpenAiUser: '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'
  monitoringReader: '43d0d8ad-25c7-4714-9337-8ba259a9fe05'
}

resource site 'Microsoft.Web/sites@2024-04-01' existing = if (kind == 'site') {
  name: resourceName
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = if (kind == 'registry') {
  name: resourceName
}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = if (kind == 'workspace') {
  name: resourceName
}

resource store 'Microsoft.AppConfiguration/configurationStores@2023-03-01' existing = if (kind == 'appConfiguration') {
  name: resourceName
}

resource openAi 'Microsoft.CognitiveServices/accounts@2023-05-01' existing = if (kind == 'openAi') {
  name: resourceName
}

resource component 'Microsoft.Insights/components@2020-02-02' existing = if (kind == 'appInsights') {
  name: resourceName
}

// Rollback (slot swap) and downshift (app settings) on a target app.
resource siteOperator 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (kind == 'site') {
  name: guid(site.id, principalId, siteOperatorRoleId)
  scope: site
  properties: {
    roleDefinitionId: siteOperatorRoleId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Replication probes: HEAD manifests on every replica.
resource acrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (kind == 'registry') {
  name: guid(registry.id, principalId, roles.acrPull)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.acrPull)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Replication topology: read the registry (regional endpoints) and its replications (status) through ARM.
resource registryReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (kind == 'registry') {
  name: guid(registry.id, principalId, roles.reader)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.reader)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Spend, 429 and exception queries (downshift, error clustering).
resource logReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (kind == 'workspace') {
  name: guid(workspace.id, principalId, roles.logAnalyticsReader)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.logAnalyticsReader)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Downshift writes model keys (ETag concurrency) and the sentinel key.
resource appConfigOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (kind == 'appConfiguration') {
  name: guid(store.id, principalId, roles.appConfigurationDataOwner)
  scope: store
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.appConfigurationDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Error clustering drafts with Azure OpenAI using an Entra token (no keys).
resource openAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (kind == 'openAi') {
  name: guid(openAi.id, principalId, roles.cognitiveServicesOpenAiUser)
  scope: openAi
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesOpenAiUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Queries against a classic Application Insights component (customMetrics, exceptions).
resource monitoringReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (kind == 'appInsights') {
  name: guid(component.id, principalId, roles.monitoringReader)
  scope: component
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringReader)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
