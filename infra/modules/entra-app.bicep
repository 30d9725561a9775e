// Healer's Entra ID app registration, created with the Microsoft Graph Bicep extension (bicepconfig.json alias
// microsoftGraphV1): the audience of Azure Monitor's secure webhook and of the operators' tokens, and the client
// the console signs in with (App Service Authentication). Idempotent: `uniqueName` is the registration's key.
//
// - app roles: ActionGroupsSecureWebhook (applications: Azure Monitor), Healer.Approver (users and groups),
//   Healer.Reader (users, groups and applications such as CI pipelines polling status);
// - identifier URI api://<tenant id>/<unique name> (a form the tenant's default app management policy accepts);
// - web redirect https://<host>/.auth/login/aad/callback and ID tokens for Easy Auth;
// - the deploying user as an owner (Azure Monitor lets only owners attach a registration to an action group);
// - Azure Monitor's secure-webhook service principal (app id 461e8683-..., made sure of by the preprovision hook)
//   assigned the webhook role on Healer's service principal.
// The deploying user needs rights to create applications in Entra ID (docs/deploy.md).
extension microsoftGraphV1

@minLength(3)
@maxLength(120)
@description('Unique name of the registration in the tenant (the idempotency key).')
param uniqueName string
@minLength(1)
@maxLength(120)
param displayName string
@minLength(8)
@description('Application ID URI.')
param identifierUri string
@minLength(1)
@description('Default host name of Healer\'s Function App (the console\'s sign-in callback).')
param functionHostName string
param webhookRole string = 'ActionGroupsSecureWebhook'
param approverRole string = 'Healer.Approver'
param readerRole string = 'Healer.Reader'
@minLength(36)
@maxLength(36)
@description('Application id of Azure Monitor\'s secure-webhook caller.')
param monitorAppId string = '461e8683-5575-4561-ac7f-899cc907d62a'

var webhookRoleId = guid(uniqueName, webhookRole)

resource app 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  signInAudience: 'AzureADMyOrg'
  identifierUris: [
    identifierUri
  ]
  owners: {
    relationshipSemantics: 'append'
    relationships: [
      deployer().objectId
    ]
  }
  appRoles: [
    {
      id: webhookRoleId
      value: webhookRole
      displayName: 'Azure Monitor secure webhook'
      description: 'Azure Monitor action groups delivering alerts to Healer.'
      allowedMemberTypes: [
        'Application'
      ]
      isEnabled: true
    }
    {
      id: guid(uniqueName, approverRole)
      value: approverRole
      displayName: 'Healer approver'
      description: 'Approve or reject Healer\'s pending actions and change its controls (kill switch, dry-run).'
      allowedMemberTypes: [
        'User'
      ]
      isEnabled: true
    }
    {
      id: guid(uniqueName, readerRole)
      value: readerRole
      displayName: 'Healer reader'
      description: 'Read Healer\'s audit, approvals, controls and replication status.'
      allowedMemberTypes: [
        'User'
        'Application'
      ]
      isEnabled: true
    }
  ]
  api: {
    oauth2PermissionScopes: [
      {
        id: guid(uniqueName, 'user_impersonation')
        value: 'user_impersonation'
        type: 'User'
        isEnabled: true
        adminConsentDisplayName: 'Use Healer as the signed-in operator'
        adminConsentDescription: 'Lets a client (the healer CLI) call Healer as the signed-in operator, with the operator\'s app roles.'
        userConsentDisplayName: 'Use Healer as you'
        userConsentDescription: 'Lets the client call Healer as you, with your Healer roles.'
      }
    ]
  }
  web: {
    redirectUris: [
      'https://${functionHostName}/.auth/login/aad/callback'
    ]
    implicitGrantSettings: {
      enableIdTokenIssuance: true
    }
  }
}

resource healerSp 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: app.appId
  appRoleAssignmentRequired: true
}

resource monitorSp 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: monitorAppId
}

resource monitorMayCall 'Microsoft.Graph/appRoleAssignedTo@v1.0' = {
  appRoleId: webhookRoleId
  principalId: monitorSp.id
  resourceId: healerSp.id
}

output clientId string = app.appId
output objectId string = app.id
output identifierUri string = identifierUri
output servicePrincipalId string = healerSp.id
