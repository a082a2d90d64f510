// One storage account for everything the receiver keeps: the session and quarantine
// tables, the raw archive of every push body, the Functions host's own blobs and the
// deployment package. No account key is ever used: shared-key access is off, and the
// function app reaches every service through its managed identity.

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

@description('Table of stored sessions (app setting SESSIONS_TABLE).')
param sessionsTableName string

@description('Quarantine table for invalid sessions (app setting REJECTED_TABLE).')
param rejectedTableName string

@description('Container of the raw push bodies (app setting RAW_ARCHIVE_CONTAINER).')
param rawArchiveContainerName string

@description('Container that holds the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Days a deleted or overwritten blob (and a deleted container) can be recovered.')
@minValue(7)
@maxValue(365)
param blobRetentionDays int

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

// Blob data protection: soft delete for blobs and containers, versioning and the change
// feed, which together allow a point-in-time restore of the raw archive. Table Storage has
// no soft delete or point-in-time restore of its own: the raw archive is the copy the
// tables can be rebuilt from.
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
    changeFeed: {
      enabled: true
      retentionInDays: blobRetentionDays
    }
    restorePolicy: {
      enabled: true
      days: blobRetentionDays - 1
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource rawArchiveContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: rawArchiveContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource sessionsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: sessionsTableName
}

resource rejectedTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: rejectedTableName
}

// Versioning keeps every overwritten deployment package; drop old versions once they are
// outside the restore window, so a busy publish history does not grow without bound.
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

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output tableEndpoint string = account.properties.primaryEndpoints.table
output deploymentContainerName string = deploymentContainer.name
output rawArchiveContainerName string = rawArchiveContainer.name
output sessionsTableName string = sessionsTable.name
output rejectedTableName string = rejectedTable.name
