// The one identity the function app runs as: host storage, deployment package, the tables, the
// raw archive, the push queues, Key Vault references and Application Insights ingestion.
// User-assigned, so that its roles exist before the app is created (Key Vault references
// and the deployment container are resolved at creation time).

@description('Name of the user-assigned managed identity.')
param name string

param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
