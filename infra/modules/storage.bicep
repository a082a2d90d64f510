// One storage account for everything the receiver keeps: its four tables, the raw archive of
// every push body, the push queue and its poison queue, the Functions host's own blobs and the
// deployment package. No account key is ever used: shared-key access is off, and the function
// app reaches every table, container and queue through its managed identity, with a role
// scoped to that one table, container or queue (rbac.bicep). In Azure the app creates none of
// them: they are all created here.

@description('Storage account name: 3-24 lower-case letters and digits, globally unique.')
@minLength(3)
@maxLength(24)
param name string

param location string
param tags object

@description('Geo-redundant replication: the sessions are billing records.')
@allowed([
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_GRS'

@description('The app\'s tables: sessions, quarantine, session index and pushes.')
@minLength(4)
@maxLength(4)
param tableNames array

@description('Container of the raw push bodies (app setting RAW_ARCHIVE_CONTAINER).')
param rawArchiveContainerName string

@description('Queue of pushes finished in the background (app setting PUSH_QUEUE).')
@minLength(3)
@maxLength(56)
param pushQueueName string

@description('Days a deleted or overwritten blob (and a deleted container) can be recovered.')
@minValue(7)
@maxValue(365)
param blobRetentionDays int

@description('Days each archived push body stays immutable.')
@minValue(1)
@maxValue(146000)
param rawArchiveImmutabilityDays int

@description('The archive\'s immutability policy has been locked: leave it alone (a locked policy can only be extended, with a separate action).')
param rawArchiveImmutabilityLocked bool

@description('Put a CanNotDelete lock on the account.')
param deleteLock bool

@description('Log Analytics workspace that receives the table and blob write and delete logs.')
param logAnalyticsWorkspaceId string

// The Flex Consumption deployment package, and the Functions host's own containers (keys and
// locks). The host would create its containers itself with an account-wide role; creating them
// here lets its role be scoped to them.
var deploymentContainerName = 'app-package'
var hostContainerNames = [
  'azure-webjobs-hosts'
  'azure-webjobs-secrets'
]
// The Functions host moves a message that failed five times to <queue>-poison.
var queueNames = [
  pushQueueName
  '${pushQueueName}-poison'
]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: The function app is not VNet-integrated (the receiver must be reachable from ChargePilot's cloud, and private endpoints would add cost and moving parts for an hourly push), so it reaches storage over the public endpoint; a Deny firewall would lock it out. Every request needs an Entra token with a data role: shared keys and anonymous access are off.
  // checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35: public network access is needed by the non-VNet-integrated app; access is by Entra identity only.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

// Deleting the account (or its resource group) fails while this lock exists. It does not stop
// data-plane writes; the archive's immutability and the scoped roles do that.
resource accountLock 'Microsoft.Authorization/locks@2020-05-01' = if (deleteLock) {
  name: 'keep-billing-records'
  scope: account
  properties: {
    level: 'CanNotDelete'
    notes: 'Holds the billing records (sessions) and the raw archive they can be rebuilt from. Lift on purpose only: docs/deploy.md, Tear down.'
  }
}

// Blob data protection: soft delete for blobs and containers, and versions of overwritten
// blobs (the deployment package, the host's blobs). Point-in-time restore is not used: it
// cannot be combined with the archive's immutability policy, which protects the archive
// better. Table Storage has no soft delete of its own: the raw archive is the copy the tables
// can be rebuilt from.
resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: blobRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: blobRetentionDays
    }
    isVersioningEnabled: true
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource hostContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for containerName in hostContainerNames: {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}]

resource rawArchiveContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: rawArchiveContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Time-based retention (container-level WORM): an archived push body can be created and read,
// but neither deleted nor overwritten, by the app's identity or anyone else, until it is
// rawArchiveImmutabilityDays old. Deployed unlocked; docs/deploy.md says how to lock it.
resource rawArchiveImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = if (!rawArchiveImmutabilityLocked) {
  parent: rawArchiveContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: rawArchiveImmutabilityDays
    allowProtectedAppendWrites: false
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for tableName in tableNames: {
  parent: tableService
  name: tableName
}]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queueName in queueNames: {
  parent: queueService
  name: queueName
}]

// Versioning keeps every overwritten deployment package; drop old versions once they are
// outside the soft-delete window, so a busy publish history does not grow without bound.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'expire-old-versions'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
            }
            actions: {
              version: {
                delete: {
                  daysAfterCreationGreaterThan: blobRetentionDays + 1
                }
              }
            }
          }
        }
      ]
    }
  }
}

// A tamper trail for the billing records: every write and delete on the tables and on the
// blobs (archive included), with the caller's identity, kept in Log Analytics.
resource tableAudit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'table-writes-and-deletes'
  scope: tableService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

resource blobAudit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'blob-writes-and-deletes'
  scope: blobService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output tableEndpoint string = account.properties.primaryEndpoints.table
output queueEndpoint string = account.properties.primaryEndpoints.queue
output deploymentContainerName string = deploymentContainer.name
output rawArchiveContainerName string = rawArchiveContainer.name
output hostContainerNames array = hostContainerNames
output tableNames array = tableNames
output queueNames array = queueNames
output pushQueueName string = pushQueueName
