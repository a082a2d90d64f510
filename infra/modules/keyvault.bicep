// Key Vault holding the ChargePilot API key(s). RBAC mode (no access policies), soft delete
// and purge protection on. The function app reads the secret through a Key Vault reference,
// so the key never appears in app settings, templates or deployment history. The templates
// create no secret and take no key: the operator sets it with `az keyvault secret set` (its
// expiry date with it), so that a redeploy never writes a new version of it. Every read and
// change of the key is logged (AuditEvent) to Log Analytics, and Key Vault's own events warn
// the action group 30 days before the secret's expiry date.

@description('Key Vault name: 3-24 letters, digits and hyphens, globally unique.')
@minLength(3)
@maxLength(24)
param name string

param location string
param tags object

@description('Name of the secret that holds the comma-separated ChargePilot API keys.')
param apiKeysSecretName string

@description('Name of the secret holding the read keys (never written by the templates).')
param readKeysSecretName string

@description('Days a deleted vault or secret can be recovered (purge protection forbids purging before then).')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int

@description('Log Analytics workspace that receives the vault\'s audit log.')
param logAnalyticsWorkspaceId string

@description('Action group warned when the API-keys secret nears its expiry date or has expired.')
param actionGroupId string

@description('Name of the Event Grid system topic of the vault\'s events.')
param eventsTopicName string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: App Service resolves Key Vault references over the vault's public endpoint unless the app is VNet-integrated (it is not: docs/deploy.md); a Deny firewall would leave CHARGEPILOT_API_KEYS unresolved. Access is by Entra RBAC only.
  // checkov:skip=CKV_AZURE_189: Same reason as CKV_AZURE_109: without VNet integration the reference is resolved from App Service's public outbound addresses.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Who read or changed the key, and when: every data-plane request to the vault.
resource vaultAudit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'key-vault-audit'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'AuditEvent'
        enabled: true
      }
    ]
  }
}

// A warning before the key's expiry date: Key Vault publishes SecretNearExpiry 30 days before a
// secret version's expiry (and SecretExpired on the day) to Event Grid, whatever the vault's
// permission model; the subscription hands them to Azure Monitor as alerts on the action group.
// Only versions created after this subscription exists raise these events (docs/deploy.md).
resource vaultEvents 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: eventsTopicName
  location: location
  tags: tags
  properties: {
    source: vault.id
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

resource expiryWarning 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: vaultEvents
  name: 'api-keys-expiry'
  properties: {
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    filter: {
      includedEventTypes: [
        'Microsoft.KeyVault.SecretNearExpiry'
        'Microsoft.KeyVault.SecretExpired'
      ]
      subjectBeginsWith: apiKeysSecretName
    }
    destination: {
      endpointType: 'MonitorAlert'
      properties: {
        severity: 'Sev2'
        description: 'The ChargePilot API-keys secret expires within 30 days, or has expired: rotate the key (docs/deploy.md, Rotate the key) and set a new expiry date.'
        actionGroups: [
          actionGroupId
        ]
      }
    }
  }
}

resource readKeysExpiryWarning 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: vaultEvents
  name: 'read-keys-expiry'
  properties: {
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    filter: {
      includedEventTypes: [
        'Microsoft.KeyVault.SecretNearExpiry'
        'Microsoft.KeyVault.SecretExpired'
      ]
      subjectBeginsWith: readKeysSecretName
    }
    destination: {
      endpointType: 'MonitorAlert'
      properties: {
        severity: 'Sev3'
        description: 'The read-keys secret (billing systems, GET /api/sessions) expires within 30 days, or has expired: rotate the read key (docs/billing-systems.md) and set a new expiry date.'
        actionGroups: [
          actionGroupId
        ]
      }
    }
  }
}

output name string = vault.name
output apiKeysSecretName string = apiKeysSecretName
output readKeysSecretName string = readKeysSecretName
