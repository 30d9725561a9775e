// The custom role Healer holds on each target App Service app: read the app and its slots, read and write
// configuration (app settings for the downshift healer, slot-sticky setting names), swap slots and poll the swap;
// for the rollback's evidence and recovery proof: list instances, read deployment logs and the app's metrics.
// Nothing else: no delete, no restart, no publishing credentials, no site write, no slot config write
// (Healer only writes the production app's settings and its slot-sticky names).
targetScope = 'subscription'

param roleName string
@description('Where the role may be assigned: the resource groups of the target apps.')
param assignableScopes array

resource siteOperator 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, roleName)
  properties: {
    roleName: roleName
    description: 'Healer: read an App Service app and its slots, read/write its configuration, swap slots.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Web/sites/read'
          'Microsoft.Web/sites/slots/read'
          'Microsoft.Web/sites/config/read'
          'Microsoft.Web/sites/config/list/action'
          'Microsoft.Web/sites/config/write'
          'Microsoft.Web/sites/slots/config/read'
          'Microsoft.Web/sites/slots/config/list/action'
          'Microsoft.Web/sites/deployments/read'
          'Microsoft.Web/sites/slots/deployments/read'
          'Microsoft.Web/sites/slotsswap/action'
          'Microsoft.Web/sites/slots/slotsswap/action'
          'Microsoft.Web/sites/operationresults/read'
          'Microsoft.Web/sites/slots/operationresults/read'
          'Microsoft.Web/sites/instances/read'
          'Microsoft.Web/sites/deployments/log/read'
          'Microsoft.Web/sites/slots/deployments/log/read'
          'Microsoft.Insights/metrics/read'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: assignableScopes
  }
}

output id string = siteOperator.id
output name string = siteOperator.name
