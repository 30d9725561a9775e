// App Service Authentication (Easy Auth) for the operator console on Healer's Function App. A module of its own:
// it needs the client id of Healer's app registration, and the registration (entra-app.bicep) needs the app's
// host name for its sign-in redirect, so the order is Function App -> registration -> this.
@description('Name of Healer\'s Function App.')
param siteName string
@description('The app registration\'s application (client) id. Empty: Easy Auth stays off.')
param easyAuthClientId string = ''
@minLength(36)
@maxLength(36)
param easyAuthTenantId string = tenant().tenantId
@description('Token audiences Easy Auth accepts (the app registration\'s application ID URI).')
param easyAuthAudiences array = []

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: siteName
}

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
