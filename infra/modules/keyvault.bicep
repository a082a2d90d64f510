// Key Vault holding the ChargePilot API key(s). RBAC mode (no access policies), soft delete
// and purge protection on. The function app reads the secret through a Key Vault reference,
// so the key never appears in app settings, templates or deployment history.

@description('Key Vault name: 3-24 letters, digits and hyphens, globally unique.')
@minLength(3)
@maxLength(24)
param name string

param location string
param tags object

@description('Name of the secret that holds the comma-separated ChargePilot API keys.')
param apiKeysSecretName string

@description('Comma-separated ChargePilot API keys. Empty: the secret is not written by this deployment (set it with `az keyvault secret set`).')
@secure()
param apiKeys string

@description('Expiry written on the secret (Unix seconds): a rotation reminder; Key Vault still returns an expired secret.')
param apiKeysExpiresOn int

@description('Days a deleted vault or secret can be recovered (purge protection forbids purging before then).')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: App Service resolves Key Vault references over the vault's public endpoint unless the app is VNet-integrated (it is not, see README.md, Deploy to Azure); a Deny firewall would leave CHARGEPILOT_API_KEYS unresolved. Access is by Entra RBAC only.
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

resource apiKeysSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(apiKeys)) {
  // checkov:skip=CKV_AZURE_41: False positive: checkov 3.3.30 does not read the body of a conditional (`if`) resource; exp is set below, and tests/test_infra.py asserts it.
  // checkov:skip=CKV_AZURE_114: False positive for the same reason; contentType is set below, and tests/test_infra.py asserts it.
  parent: vault
  name: apiKeysSecretName
  properties: {
    value: apiKeys
    contentType: 'text/plain; comma-separated ChargePilot API keys'
    attributes: {
      enabled: true
      exp: apiKeysExpiresOn
    }
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
output apiKeysSecretName string = apiKeysSecretName
