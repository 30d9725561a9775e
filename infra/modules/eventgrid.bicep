// Healer's custom topic for its own outcome events (Healer.ImageReplicated, Healer.ImageReplicationTimedOut,
// Healer.TagRaceDetected). Entra ID only: Healer publishes with EventGrid Data Sender (rbac.bicep).
param name string
param location string
param tags object = {}

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    inputSchema: 'EventGridSchema'
    publicNetworkAccess: 'Enabled'
    disableLocalAuth: true
  }
}

output id string = topic.id
output name string = topic.name
output endpoint string = topic.properties.endpoint
