// The receiver: a Python 3.11 function app on the Flex Consumption plan (FC1, Linux).
// Runtime, scale and the deployment package live in functionAppConfig, not in app settings or
// siteConfig: Flex Consumption refuses the site properties and app settings on Microsoft's
// list of Flex Consumption deprecations (ftpsState, linuxFxVersion, FUNCTIONS_WORKER_RUNTIME,
// WEBSITE_RUN_FROM_PACKAGE...), and tests/unit/test_infra_static.py keeps them out. Every
// connection is identity-based.

param planName string
param appName string
param location string
param tags object

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity (selects it for storage and telemetry).')
param identityClientId string

param storageBlobEndpoint string
param storageTableEndpoint string
param storageQueueEndpoint string
param deploymentContainerName string

param applicationInsightsConnectionString string

@description('Log Analytics workspace that receives the app\'s own logs.')
param logAnalyticsWorkspaceId string

param keyVaultName string
param apiKeysSecretName string
param readKeysSecretName string

param sessionsTableName string
param rejectedTableName string
param sessionIndexTableName string
param pushesTableName string
param rawArchiveContainerName string
param pushQueueName string
param maxBodyBytes int
param maxPushSessions int
param pushDeadlineSeconds int
param sessionMaxEnergyKwh int
param sessionMaxPowerKw int
param sessionMaxDays int
param sessionMaxFutureHours int
param sessionEarliestStart string

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

@description('Spread the plan across availability zones (only in regions that support it for Flex Consumption).')
param zoneRedundant bool

@minValue(0)
@maxValue(10)
@description('Always-ready instances of the HTTP functions (Flex Consumption "http" group): 0 scales to zero and a first push after idle waits for a cold start; 1 keeps one instance warm, billed around the clock.')
param alwaysReadyHttpInstances int

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy is the zoneRedundant parameter, off by default because not every Flex Consumption region offers it and it keeps always-ready instances billed around the clock (docs/deploy.md says how and when to turn it on). The data itself is geo-redundant; a push that fails during a zone outage gets an error, and re-sending it is safe because writes are idempotent.
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
    zoneRedundant: zoneRedundant
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: The endpoint is public by design: ChargePilot's cloud pushes to it over the internet. Every push is authenticated by the API key before its body is parsed, and the host buffers no body over twice MAX_BODY_BYTES (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT below).
  // checkov:skip=CKV_AZURE_17: ChargePilot authenticates with an API key header (Ocp-Apim-Subscription-Key) and cannot present client certificates.
  // checkov:skip=CKV_AZURE_212: Flex Consumption has no fixed worker count: the platform scales instances per request (functionAppConfig.scaleAndConcurrency).
  // checkov:skip=CKV_AZURE_213: App Service health check needs a Premium or Dedicated plan; on Flex Consumption, GET /api/health is probed by the availability test instead (alerts.bicep).
  // checkov:skip=CKV_AZURE_78: Flex Consumption refuses siteConfig.ftpsState (ARM error 51021; it is on Microsoft's list of Flex Consumption deprecations). FTP is closed all the same: the ftp and scm basic publishing credentials policies below are off, and tests/unit/test_infra_static.py asserts both.
  name: appName
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
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
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        alwaysReady: alwaysReadyHttpInstances > 0 ? [
          {
            name: 'http'
            instanceCount: alwaysReadyHttpInstances
          }
        ] : []
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      appSettings: [
        // The Functions host's own storage (keys, locks): blobs only, through the identity.
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        {
          name: 'AzureWebJobsStorage__blobServiceUri'
          value: storageBlobEndpoint
        }
        // The host buffers a body whole before the function runs, and fails a larger one with 500:
        // twice MAX_BODY_BYTES bounds what it buffers for anyone, and a push a little over the
        // receiver's limit still gets the receiver's clear 413 (docs/configuration.md).
        {
          name: 'FUNCTIONS_REQUEST_BODY_SIZE_LIMIT'
          value: string(maxBodyBytes * 2)
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: applicationInsightsConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identityClientId};Authorization=AAD'
        }
        // The receiver's settings: exactly the names in sessions/settings.py
        // (tests/unit/test_infra_static.py keeps them in step).
        {
          name: 'CHARGEPILOT_API_KEYS'
          value: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${apiKeysSecretName})'
        }
        // Billing systems' keys for GET /api/sessions: a secret of their own, never a push key.
        {
          name: 'CHARGEPILOT_READ_KEYS'
          value: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${readKeysSecretName})'
        }
        {
          name: 'SESSIONS_TABLE'
          value: sessionsTableName
        }
        {
          name: 'REJECTED_TABLE'
          value: rejectedTableName
        }
        {
          name: 'SESSION_INDEX_TABLE'
          value: sessionIndexTableName
        }
        {
          name: 'PUSHES_TABLE'
          value: pushesTableName
        }
        {
          name: 'RAW_ARCHIVE_CONTAINER'
          value: rawArchiveContainerName
        }
        {
          name: 'PUSH_QUEUE'
          value: pushQueueName
        }
        {
          name: 'MAX_BODY_BYTES'
          value: string(maxBodyBytes)
        }
        {
          name: 'MAX_PUSH_SESSIONS'
          value: string(maxPushSessions)
        }
        {
          name: 'PUSH_DEADLINE_SECONDS'
          value: string(pushDeadlineSeconds)
        }
        {
          name: 'SESSION_MAX_ENERGY_KWH'
          value: string(sessionMaxEnergyKwh)
        }
        {
          name: 'SESSION_MAX_POWER_KW'
          value: string(sessionMaxPowerKw)
        }
        {
          name: 'SESSION_MAX_DAYS'
          value: string(sessionMaxDays)
        }
        {
          name: 'SESSION_MAX_FUTURE_HOURS'
          value: string(sessionMaxFutureHours)
        }
        {
          name: 'SESSION_EARLIEST_START'
          value: sessionEarliestStart
        }
        // One identity-based connection for the tables, the archive and the push queue; the
        // queue trigger binding names it too (connection "SESSIONS_STORAGE").
        {
          name: 'SESSIONS_STORAGE__tableServiceUri'
          value: storageTableEndpoint
        }
        {
          name: 'SESSIONS_STORAGE__blobServiceUri'
          value: storageBlobEndpoint
        }
        {
          name: 'SESSIONS_STORAGE__queueServiceUri'
          value: storageQueueEndpoint
        }
        {
          name: 'SESSIONS_STORAGE__credential'
          value: 'managedidentity'
        }
        {
          name: 'SESSIONS_STORAGE__clientId'
          value: identityClientId
        }
      ]
    }
  }
}

// No FTP and no basic-auth (publishing profile) deployment: Core Tools and azd publish to
// Flex Consumption with an Entra token.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

// The host's and the functions' own log (start-up, binding and trigger errors) in Log Analytics,
// beside the Application Insights telemetry.
resource appLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'function-app-logs'
  scope: app
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'FunctionAppLogs'
        enabled: true
      }
    ]
  }
}

output name string = app.name
output defaultHostName string = app.properties.defaultHostName
