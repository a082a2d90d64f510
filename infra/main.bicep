// ChargePilot Push Receiver: everything it needs in one resource group.
// Read top to bottom: monitoring, identity, storage, Key Vault, roles, then the app.
// Deploy with `az deployment group create` (see DEPLOY.md) or `azd up`.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------

@minLength(1)
@maxLength(32)
@description('Environment name (dev, prod, or the azd environment): part of every resource name and tag.')
param environmentName string

@description('Region of every resource. Flex Consumption must be offered there: `az functionapp list-flexconsumption-locations`.')
param location string = resourceGroup().location

@secure()
@description('Comma-separated ChargePilot API key(s), stored as a Key Vault secret. An empty string leaves the secret to be set with `az keyvault secret set` (DEPLOY.md). Never put it in a parameter file.')
param chargePilotApiKeys string

@description('Expiry written on the API-keys secret (Unix seconds, default one year from deployment): a rotation reminder only.')
param apiKeysExpiresOn int = dateTimeToEpoch(dateTimeAdd(utcNow(), 'P1Y'))

@description('Name of the Key Vault secret holding the API keys.')
param apiKeysSecretName string = 'chargepilot-api-keys'

@minLength(3)
@maxLength(63)
@description('Table of stored sessions (app setting SESSIONS_TABLE).')
param sessionsTableName string = 'ChargingSessions'

@minLength(3)
@maxLength(63)
@description('Quarantine table of invalid sessions (app setting REJECTED_TABLE).')
param rejectedTableName string = 'RejectedSessions'

@description('Archive every raw push body as a blob (app setting RAW_ARCHIVE_ENABLED).')
param rawArchiveEnabled bool = true

@minLength(3)
@maxLength(63)
@description('Blob container of the raw push archive (app setting RAW_ARCHIVE_CONTAINER).')
param rawArchiveContainerName string = 'raw-pushes'

@minValue(1)
@description('Largest accepted push body in bytes (app setting MAX_BODY_BYTES).')
param maxBodyBytes int = 16777216

@allowed([
  512
  2048
  4096
])
@description('Memory of each Flex Consumption instance, in MB.')
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
@description('Most instances the app may scale out to (caps cost if the endpoint is flooded).')
param maximumInstanceCount int = 40

@description('Zone-redundant Flex Consumption plan (only where the region supports it).')
param zoneRedundant bool = false

@allowed([
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
@description('Storage replication: geo-redundant, the sessions are billing records.')
param storageSkuName string = 'Standard_GRS'

@minValue(7)
@maxValue(365)
@description('Days deleted or overwritten blobs and deleted containers stay recoverable (point-in-time restore covers one day less).')
param blobRetentionDays int = 30

@minValue(7)
@maxValue(90)
@description('Days a deleted Key Vault or secret stays recoverable; purge protection forbids an earlier purge.')
param keyVaultSoftDeleteRetentionInDays int = 90

@minValue(30)
@maxValue(730)
@description('Days Log Analytics keeps logs.')
param logRetentionInDays int = 30

@description('Optional object id of the operator (you, or a pipeline): gets Key Vault Secrets Officer (to put the key) and Storage Table Data Reader (to export sessions). Empty: none.')
param operatorPrincipalId string = ''

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

@description('Optional explicit function app name (globally unique). Empty: derived from the environment name.')
param functionAppName string = ''

// ---------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var environmentSlug = toLower(take(environmentName, 20))
var appName = !empty(functionAppName) ? functionAppName : '${abbrs.webSitesFunctions}cp-${environmentSlug}-${resourceToken}'
var deploymentContainerName = 'app-package'
var tags = {
  'azd-env-name': environmentName
  application: 'chargepilot-push-receiver'
}

// ---------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
  }
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    skuName: storageSkuName
    sessionsTableName: sessionsTableName
    rejectedTableName: rejectedTableName
    rawArchiveContainerName: rawArchiveContainerName
    deploymentContainerName: deploymentContainerName
    blobRetentionDays: blobRetentionDays
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    apiKeysSecretName: apiKeysSecretName
    apiKeys: chargePilotApiKeys
    apiKeysExpiresOn: apiKeysExpiresOn
    softDeleteRetentionInDays: keyVaultSoftDeleteRetentionInDays
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  params: {
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    appPrincipalId: identity.outputs.principalId
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  // The identity's roles must exist before the app starts: it reads its deployment package
  // and resolves the Key Vault reference with them.
  dependsOn: [
    rbac
  ]
  params: {
    planName: '${abbrs.webServerFarms}${resourceToken}'
    appName: appName
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    keyVaultName: keyVault.outputs.name
    apiKeysSecretName: keyVault.outputs.apiKeysSecretName
    sessionsTableName: storage.outputs.sessionsTableName
    rejectedTableName: storage.outputs.rejectedTableName
    maxBodyBytes: maxBodyBytes
    rawArchiveEnabled: rawArchiveEnabled
    rawArchiveContainerName: storage.outputs.rawArchiveContainerName
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    zoneRedundant: zoneRedundant
  }
}

// ---------------------------------------------------------------------------------------
// Outputs (UPPER_CASE so that azd copies them into the environment's .env)
// ---------------------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output RESOURCE_GROUP string = resourceGroup().name
output FUNCTION_APP_NAME string = functionApp.outputs.name
@description('The URL to give ChargePilot as the push endpoint.')
output SESSIONS_ENDPOINT_URL string = 'https://${functionApp.outputs.defaultHostName}/api/sessions'
output HEALTH_URL string = 'https://${functionApp.outputs.defaultHostName}/api/health'
output KEY_VAULT_NAME string = keyVault.outputs.name
output API_KEYS_SECRET_NAME string = keyVault.outputs.apiKeysSecretName
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATION_INSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
