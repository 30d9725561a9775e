// Links an existing private DNS zone (e.g. privatelink.azurecr.io, where a registry's private endpoint records
// live) to the VNet Healer's Function App is integrated with, so the regional registry hosts resolve to the
// private endpoint from Healer. Deployed in the zone's own resource group.
param zoneName string
@description('Resource id of the VNet Healer is integrated with.')
param vnetId string
param linkName string
param tags object = {}

resource zone 'Microsoft.Network/privateDnsZones@2024-06-01' existing = {
  name: zoneName
}

resource link 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = {
  parent: zone
  name: linkName
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnetId
    }
  }
}
