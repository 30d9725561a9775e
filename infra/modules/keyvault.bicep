// Key Vault in RBAC mode for Healer's secrets (GitHub token or App private key, notification webhook URL, telemetry connection
// string, LLM key). App settings reference secrets as @Microsoft.KeyVault(VaultName=...;SecretName=...); Healer's
// identity holds Key Vault Secrets User on this vault only (rbac.bicep).
param name string
param location string
param tags object = {}
@description('Application Insights component whose connection string is stored as a secret.')
param applicationInsightsName string
@secure()
@description('Notification webhook URL (Teams/Slack/Logic App). Empty: no secret is written.')
param notifyWebhookUrl string = ''
@secure()
@description('GitHub token for the error-clustering healer. Empty: no secret is written (set it later).')
param githubToken string = ''
@secure()
@description('PEM private key of the GitHub App the error-clustering healer may authenticate as. Empty: no secret is written (set it later).')
param githubAppPrivateKey string = ''
@secure()
@description('Key of an OpenAI-compatible endpoint for the error-clustering healer. Empty: no secret is written.')
param llmApiKey string = ''

@secure()
@description('Secret that signs the operator console\'s CSRF tokens (generated per deployment).')
param consoleSecret string

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource appInsightsSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'appinsights-connection-string'
  properties: {
    value: appInsights.properties.ConnectionString
    contentType: 'text/plain'
  }
}

resource consoleSecretValue 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'healer-console-secret'
  properties: {
    value: consoleSecret
    contentType: 'text/plain'
  }
}

resource notifySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(notifyWebhookUrl)) {
  parent: vault
  name: 'healer-notify-webhook-url'
  properties: {
    value: notifyWebhookUrl
    contentType: 'text/plain'
  }
}

resource githubSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(githubToken)) {
  parent: vault
  name: 'healer-github-token'
  properties: {
    value: githubToken
    contentType: 'text/plain'
  }
}

resource githubAppKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(githubAppPrivateKey)) {
  parent: vault
  name: 'healer-github-app-private-key'
  properties: {
    value: githubAppPrivateKey
    contentType: 'application/x-pem-file'
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri

resource llmKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(llmApiKey)) {
  parent: vault
  name: 'healer-llm-api-key'
  properties: {
    value: llmApiKey
    contentType: 'text/plain'
  }
}
