// ChargePilot Push Receiver: everything it needs in one resource group.
// Read top to bottom: names and the checks that refuse parameters that cannot deploy, monitoring
// and alerting, identity, storage, Key Vault, roles, the app, then the alerts that watch it.
// Deploy with `az deployment group create` or `azd up`: docs/deploy.md walks through both.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------

@minLength(1)
@maxLength(32)
@description('Environment name (dev, prod, or the azd environment): part of every resource name and tag. Letters, digits and hyphens only.')
param environmentName string

@description('Region of every resource. Flex Consumption must be offered there: `az functionapp list-flexconsumption-locations`.')
param location string = resourceGroup().location

@description('Name of the Key Vault secret holding the API keys. The templates never write it (a redeploy would add a version each time): the runbook sets it with `az keyvault secret set` (docs/deploy.md).')
param apiKeysSecretName string = 'chargepilot-api-keys'

@description('Name of the Key Vault secret holding the read keys of billing systems (GET /api/sessions). Never written by the templates; until it is set, nothing can be read (docs/billing-systems.md).')
param readKeysSecretName string = 'chargepilot-read-keys'

@minLength(3)
@maxLength(63)
@description('Table of stored sessions (app setting SESSIONS_TABLE).')
param sessionsTableName string = 'ChargingSessions'

@minLength(3)
@maxLength(63)
@description('Quarantine table of invalid sessions (app setting REJECTED_TABLE).')
param rejectedTableName string = 'RejectedSessions'

@minLength(3)
@maxLength(63)
@description('Index of stored sessions by charger and transaction (app setting SESSION_INDEX_TABLE).')
param sessionIndexTableName string = 'SessionIndex'

@minLength(3)
@maxLength(63)
@description('One record per push and its outcome (app setting PUSHES_TABLE).')
param pushesTableName string = 'Pushes'

@minLength(3)
@maxLength(63)
@description('Blob container of the raw push archive (app setting RAW_ARCHIVE_CONTAINER). Time-based immutability applies to it.')
param rawArchiveContainerName string = 'raw-pushes'

@minLength(3)
@maxLength(56)
@description('Queue of large pushes finished in the background (app setting PUSH_QUEUE). Its poison queue is this name plus -poison, hence 56 characters at most.')
param pushQueueName string = 'pushes-to-store'

@minValue(1)
@description('Largest accepted push body in bytes (app setting MAX_BODY_BYTES).')
param maxBodyBytes int = 16777216

@minValue(1)
@description('Most sessions accepted in one push (app setting MAX_PUSH_SESSIONS).')
param maxPushSessions int = 150000

@minValue(1)
@maxValue(230)
@description('Seconds a push is worked on before it is answered 202 and finished in the background (app setting PUSH_DEADLINE_SECONDS).')
param pushDeadlineSeconds int = 10

@minValue(1)
@description('Plausibility: most energy of one session in kWh (app setting SESSION_MAX_ENERGY_KWH).')
param sessionMaxEnergyKwh int = 5000

@minValue(1)
@description('Plausibility: highest average power of one session in kW (app setting SESSION_MAX_POWER_KW).')
param sessionMaxPowerKw int = 4000

@minValue(1)
@description('Plausibility: longest session in days (app setting SESSION_MAX_DAYS).')
param sessionMaxDays int = 90

@minValue(1)
@description('Plausibility: how far in the future a session may end, in hours (app setting SESSION_MAX_FUTURE_HOURS).')
param sessionMaxFutureHours int = 24

@minLength(10)
@maxLength(10)
@description('Plausibility: earliest accepted session start, YYYY-MM-DD (app setting SESSION_EARLIEST_START).')
param sessionEarliestStart string = '2010-01-01'

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

@minValue(0)
@maxValue(10)
@description('Always-ready instances for the HTTP functions. 0 (the default) scales to zero: the first push after an idle spell waits for a cold start (docs/deploy.md has what it costs against the push deadline). 1 keeps one instance warm, billed around the clock.')
param alwaysReadyHttpInstances int = 0

@description('Zone-redundant Flex Consumption plan. Needs a region that offers it and zone-redundant storage (Standard_GZRS or Standard_RAGZRS), and the platform then keeps at least two always-ready instances per scaling group, billed around the clock (docs/deploy.md).')
param zoneRedundant bool = false

@allowed([
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
@description('Storage replication: geo-redundant, the sessions are billing records. GZRS variants are also zone-redundant.')
param storageSkuName string = 'Standard_GRS'

@minValue(7)
@maxValue(365)
@description('Days deleted or overwritten blobs and deleted containers stay recoverable (soft delete and versions).')
param blobRetentionDays int = 30

@minValue(1)
@maxValue(146000)
@description('Days each raw push body stays immutable (time-based retention on the archive container): nobody can delete or overwrite it before then.')
param rawArchiveImmutabilityDays int = 365

@description('Set to true once the archive\'s immutability policy has been locked (docs/deploy.md): a locked policy can only be extended, so the template then leaves it alone.')
param rawArchiveImmutabilityLocked bool = false

@description('Put a CanNotDelete lock on the storage account, so that deleting the account or the resource group fails until the lock is lifted on purpose (docs/deploy.md, Tear down).')
param storageDeleteLock bool = false

@minValue(7)
@maxValue(90)
@description('Days a deleted Key Vault or secret stays recoverable; purge protection forbids an earlier purge.')
param keyVaultSoftDeleteRetentionInDays int = 90

@minValue(30)
@maxValue(730)
@description('Days Log Analytics keeps logs (alert queries, audit events, storage writes and deletes).')
param logRetentionInDays int = 30

@description('Optional e-mail address the alerts are sent to. Empty: the alerts still fire and show in the portal (Monitor, Alerts), and recipients can be added to the action group later.')
param alertEmail string = ''

@minValue(1)
@maxValue(48)
@description('Hours without an accepted push (200 or 202) before the silence alert fires. ChargePilot pushes hourly.')
param silenceAlertHours int = 3

@minLength(3)
@description('Locations of the availability test on /api/health (Application Insights test location ids; the alert fires when two fail). Each location probes every five minutes, billed per probe.')
param availabilityTestLocations array = [
  'emea-nl-ams-azr'
  'emea-gb-db3-azr'
  'us-va-ash-azr'
]

@description('Optional object id of the operator (you, or a pipeline): gets Key Vault Secrets Officer (to put the key), Storage Table Data Reader (to export sessions) and Storage Blob Data Reader on the archive. Empty: none.')
param operatorPrincipalId string = ''

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
@description('Kind of principal operatorPrincipalId is: ServicePrincipal when a pipeline runs the deployment (azd passes AZURE_PRINCIPAL_TYPE).')
param operatorPrincipalType string = 'User'

@description('Optional explicit function app name (globally unique, 2-60 letters, digits and hyphens). Empty: derived from the environment name.')
param functionAppName string = ''

// ---------------------------------------------------------------------------------------
// Checks (passed to the names module, which refuses any that is false)
// ---------------------------------------------------------------------------------------

var siteNameCharacters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-'
var environmentNameCharacters = [for i in range(0, length(environmentName)): substring(environmentName, i, 1)]
var functionAppNameCharacters = [for i in range(0, length(functionAppName)): substring(functionAppName, i, 1)]
var environmentNameIsValid = empty(filter(environmentNameCharacters, c => !contains(siteNameCharacters, c)))
var functionAppNameIsValid = empty(functionAppName) || (length(functionAppName) >= 2 && length(functionAppName) <= 60 && !startsWith(functionAppName, '-') && !endsWith(functionAppName, '-') && empty(filter(functionAppNameCharacters, c => !contains(siteNameCharacters, c))))
var zoneRedundancyIsPossible = !zoneRedundant || contains([
  'Standard_GZRS'
  'Standard_RAGZRS'
], storageSkuName)

var tableNames = [
  sessionsTableName
  rejectedTableName
  sessionIndexTableName
  pushesTableName
]
var tags = {
  'azd-env-name': environmentName
  application: 'chargepilot-push-receiver'
}

// ---------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------

module names 'modules/names.bicep' = {
  name: 'names'
  params: {
    environmentName: environmentName
    functionAppName: functionAppName
    environmentNameHasOnlyLettersDigitsAndHyphens: environmentNameIsValid
    functionAppNameIsEmptyOrAValidSiteName: functionAppNameIsValid
    zoneRedundantPlanHasZoneRedundantStorage: zoneRedundancyIsPossible
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: names.outputs.logAnalyticsName
    applicationInsightsName: names.outputs.applicationInsightsName
    actionGroupName: names.outputs.actionGroupName
    alertEmail: alertEmail
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
  }
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: names.outputs.identityName
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: names.outputs.storageAccountName
    location: location
    tags: tags
    skuName: storageSkuName
    tableNames: tableNames
    rawArchiveContainerName: rawArchiveContainerName
    pushQueueName: pushQueueName
    blobRetentionDays: blobRetentionDays
    rawArchiveImmutabilityDays: rawArchiveImmutabilityDays
    rawArchiveImmutabilityLocked: rawArchiveImmutabilityLocked
    deleteLock: storageDeleteLock
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: names.outputs.keyVaultName
    location: location
    tags: tags
    apiKeysSecretName: apiKeysSecretName
    readKeysSecretName: readKeysSecretName
    softDeleteRetentionInDays: keyVaultSoftDeleteRetentionInDays
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
    actionGroupId: monitoring.outputs.actionGroupId
    eventsTopicName: names.outputs.keyVaultEventsTopicName
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  params: {
    storageAccountName: storage.outputs.name
    tableNames: storage.outputs.tableNames
    rawArchiveContainerName: storage.outputs.rawArchiveContainerName
    deploymentContainerName: storage.outputs.deploymentContainerName
    hostContainerNames: storage.outputs.hostContainerNames
    queueNames: storage.outputs.queueNames
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
    planName: names.outputs.planName
    appName: names.outputs.functionAppName
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
    keyVaultName: keyVault.outputs.name
    apiKeysSecretName: keyVault.outputs.apiKeysSecretName
    readKeysSecretName: keyVault.outputs.readKeysSecretName
    sessionsTableName: sessionsTableName
    rejectedTableName: rejectedTableName
    sessionIndexTableName: sessionIndexTableName
    pushesTableName: pushesTableName
    rawArchiveContainerName: storage.outputs.rawArchiveContainerName
    pushQueueName: storage.outputs.pushQueueName
    maxBodyBytes: maxBodyBytes
    maxPushSessions: maxPushSessions
    pushDeadlineSeconds: pushDeadlineSeconds
    sessionMaxEnergyKwh: sessionMaxEnergyKwh
    sessionMaxPowerKw: sessionMaxPowerKw
    sessionMaxDays: sessionMaxDays
    sessionMaxFutureHours: sessionMaxFutureHours
    sessionEarliestStart: sessionEarliestStart
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    zoneRedundant: zoneRedundant
    alwaysReadyHttpInstances: alwaysReadyHttpInstances
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    actionGroupId: monitoring.outputs.actionGroupId
    alertNamePrefix: names.outputs.alertNamePrefix
    availabilityTestName: names.outputs.availabilityTestName
    healthUrl: 'https://${functionApp.outputs.defaultHostName}/api/health'
    availabilityTestLocations: availabilityTestLocations
    silenceAlertHours: silenceAlertHours
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
@description('The Key Vault secret of the billing systems\' read keys (GET /api/sessions).')
output READ_KEYS_SECRET_NAME string = keyVault.outputs.readKeysSecretName
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATION_INSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output LOG_ANALYTICS_WORKSPACE_NAME string = monitoring.outputs.logAnalyticsName
output ACTION_GROUP_NAME string = monitoring.outputs.actionGroupName
