// Role assignments, least privilege. The function app's identity gets data-plane roles only
// (no Owner, no Contributor, no Storage Account Contributor), each scoped to the container or
// queue it is for, and for the tables to the table service, never to the storage account:
//   - Storage Table Data Contributor on the table service (tableServices/default). Sessions are
//     written in entity-group transactions, posted to the account's `$batch` URL, not to a table's,
//     and no Microsoft document shows a role scoped to one table authorising `$batch`
//     (docs/decisions/table-role-at-the-service.md). The service holds only this app's four tables
//     (storage.bicep; the host's own storage is blobs), and the role gives no management rights:
//     the app creates or deletes no table in Azure.
//   - Storage Blob Data Contributor on the raw archive container (write each push body once,
//     read it back for background processing and replay; the container's immutability policy
//     refuses deletes and overwrites whatever the role) and on the deployment container (the
//     platform reads and writes the Flex Consumption package there with this identity).
//   - Storage Blob Data Owner on the Functions host's two containers, azure-webjobs-hosts and
//     azure-webjobs-secrets: the documented role for identity-based host storage, which the
//     host would otherwise need on the whole account to create them (storage.bicep creates
//     them instead).
//   - Storage Queue Data Contributor on the push queue and its poison queue only. The queue
//     trigger needs Storage Queue Data Reader and Message Processor (get and delete messages);
//     the app also puts messages on the queue, the host updates a failed message's visibility
//     and moves a message that failed five times to the poison queue (creating it if missing):
//     Contributor on those two queues is the one built-in role that covers all of it.
//   - Key Vault Secrets User on the vault: read the API-keys secret for the Key Vault reference.
//   - Monitoring Metrics Publisher on Application Insights: Entra-authenticated telemetry.
// An optional operator principal (a person or a pipeline) gets what docs/deploy.md's own
// commands need: put the key in the vault, read the tables for `python -m sessions export`,
// read the raw archive (`python -m sessions archive list`), and see the pushes given up in the
// poison queue (`python -m sessions pushes`).

param storageAccountName string

@description('The app\'s four tables.')
param tableNames array

param rawArchiveContainerName string
param deploymentContainerName string

@description('The Functions host\'s own containers.')
param hostContainerNames array

@description('The push queue and its poison queue.')
param queueNames array

param keyVaultName string
param applicationInsightsName string

@description('Principal id of the function app\'s user-assigned identity.')
param appPrincipalId string

@description('Optional: object id of the person or pipeline that deploys and operates the receiver. Empty: no operator roles.')
param operatorPrincipalId string

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string

// Built-in role definition ids (the same in every tenant).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageTableDataReader: '76199698-9eea-4c19-bc75-cec21354c6b6'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageQueueDataReader: '19e7f393-937e-4f77-808e-94535e297925'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: storageAccount
  name: 'default'
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storageAccount
  name: 'default'
}

resource rawArchiveContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: rawArchiveContainerName
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deploymentContainerName
}

resource hostContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = [for containerName in hostContainerNames: {
  parent: blobService
  name: containerName
}]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storageAccount
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = [for queueName in queueNames: {
  parent: queueService
  name: queueName
}]

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource appTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(tableService.id, appPrincipalId, roles.storageTableDataContributor)
  scope: tableService
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Read and write the app\'s tables (${join(tableNames, ', ')}), entity-group transactions ($batch) included'
  }
}

resource appArchiveContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(rawArchiveContainer.id, appPrincipalId, roles.storageBlobDataContributor)
  scope: rawArchiveContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Archive each raw push body once and read it back (immutable: no delete, no overwrite)'
  }
}

resource appDeploymentContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deploymentContainer.id, appPrincipalId, roles.storageBlobDataContributor)
  scope: deploymentContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Flex Consumption deployment package'
  }
}

resource appHostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (containerName, i) in hostContainerNames: {
  name: guid(hostContainers[i].id, appPrincipalId, roles.storageBlobDataOwner)
  scope: hostContainers[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Functions host storage: ${containerName}'
  }
}]

resource appQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (queueName, i) in queueNames: {
  name: guid(queues[i].id, appPrincipalId, roles.storageQueueDataContributor)
  scope: queues[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Send, receive and retry pushes on ${queueName}'
  }
}]

resource appSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Resolve the CHARGEPILOT_API_KEYS Key Vault reference'
  }
}

resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Entra-authenticated Application Insights ingestion'
  }
}

resource operatorSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(vault.id, operatorPrincipalId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    description: 'Put and rotate the ChargePilot API keys'
  }
}

resource operatorTableDataReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(tableService.id, operatorPrincipalId, roles.storageTableDataReader)
  scope: tableService
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataReader)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    description: 'Read sessions for billing exports'
  }
}

resource operatorArchiveReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(rawArchiveContainer.id, operatorPrincipalId, roles.storageBlobDataReader)
  scope: rawArchiveContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    description: 'List and read archived push bodies'
  }
}

resource operatorPoisonQueueReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(queues[1].id, operatorPrincipalId, roles.storageQueueDataReader)
  scope: queues[1]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataReader)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    description: 'See the pushes given up after five tries (the poison queue)'
  }
}
