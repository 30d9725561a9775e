// Healer's Function App on the Flex Consumption plan (Linux, Python), running as the user-assigned identity.
// Every app setting comes from main.bicep (`appSettings`); this module adds none of its own. App Service
// Authentication for the console is functionapp-auth.bicep (it needs the app registration, which needs this app's host).
param name string
param planName string
param location string
param tags object = {}
@description('azd service this app is deployed as (azure.yaml): healer, or healer-worker for the split worker app.')
param serviceName string = 'healer'
@description('Resource id of the user-assigned identity.')
param identityId string
param storageBlobEndpoint string
param deploymentContainerName string
@description('All app settings (name -> value). Secrets only as Key Vault references.')
param appSettings object
param pythonVersion string = '3.11'
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048
@description('Subnet (delegated to Microsoft.App/environments) for outbound VNet integration. Empty: none.')
param vnetSubnetId string = ''

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    virtualNetworkSubnetId: empty(vnetSubnetId) ? null : vnetSubnetId
    httpsOnly: true
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      // with VNet integration every outbound call (registries behind private endpoints) goes through the VNet
      vnetRouteAllEnabled: !empty(vnetSubnetId)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// Child resources are declared with `parent:` (not nested) so offline parsers see every one of them.
resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: appSettings
}

resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output id string = site.id
output name string = site.name
output defaultHostName string = site.properties.defaultHostName
