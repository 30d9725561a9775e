// Healer's Function App on the Flex Consumption plan (Linux, Python), running as the user-assigned identity.
// Every app setting comes from main.bicep (`appSettings`); this module adds none of its own.
param name string
param planName string
param location string
param tags object = {}
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

@description('App Service Authentication (Easy Auth) for the operator console: the app registration\'s client id. Empty: off.')
param easyAuthClientId string = ''
param easyAuthTenantId string = tenant().tenantId
@description('Token audiences Easy Auth accepts (the app registration\'s application ID URI).')
param easyAuthAudiences array = []

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
  tags: union(tags, { 'azd-service-name': 'healer' })
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

// Operators sign in to the console through App Service Authentication; the platform then hands Healer the
// identity in X-MS-CLIENT-PRINCIPAL (HEALER_EASY_AUTH=true), and strips any such header a client sends.
// Bearer tokens (action groups' secure webhook, the CLI) pass through and are validated by Healer as before.
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = if (!empty(easyAuthClientId)) {
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'RedirectToLoginPage'
      redirectToProvider: 'azureactivedirectory'
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: easyAuthClientId
          openIdIssuer: 'https://sts.windows.net/${easyAuthTenantId}/v2.0'
        }
        validation: {
          allowedAudiences: easyAuthAudiences
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}
