// Every resource name, derived once from the environment name, and the checks that stop a
// deployment before anything is created when a name or a combination of parameters cannot
// deploy. It creates no resource: main.bicep passes each check as a boolean that must be true
// (@allowed([true])), so Resource Manager refuses a false one while it validates this nested
// deployment, and the error names the rule that was broken. Every other module takes its
// names from the outputs here, so none of them starts before these checks have passed.

@minLength(1)
@maxLength(32)
@description('Environment name (dev, prod, or the azd environment).')
param environmentName string

@description('Explicit function app name, or empty to derive one from the environment name.')
param functionAppName string

@allowed([
  true
])
@description('environmentName holds only letters, digits and hyphens. azd also accepts _ . ( ), which App Service names refuse: rename the environment (for example my-env instead of my_env).')
param environmentNameHasOnlyLettersDigitsAndHyphens bool

@allowed([
  true
])
@description('functionAppName is empty, or 2 to 60 letters, digits and hyphens that neither starts nor ends with a hyphen (App Service naming rules).')
param functionAppNameIsEmptyOrAValidSiteName bool

@allowed([
  true
])
@description('A zone-redundant plan needs zone-redundant storage (storageSkuName Standard_GZRS or Standard_RAGZRS): Flex Consumption requires the host storage to survive a zone outage too.')
param zoneRedundantPlanHasZoneRedundantStorage bool

var abbrs = loadJsonContent('../abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var environmentSlug = toLower(take(environmentName, 20))

output functionAppName string = empty(functionAppName) ? '${abbrs.webSitesFunctions}cp-${environmentSlug}-${resourceToken}' : functionAppName
output planName string = '${abbrs.webServerFarms}${resourceToken}'
output storageAccountName string = '${abbrs.storageStorageAccounts}${resourceToken}'
output keyVaultName string = '${abbrs.keyVaultVaults}${resourceToken}'
output identityName string = '${abbrs.managedIdentityUserAssignedIdentities}${resourceToken}'
output logAnalyticsName string = '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
output applicationInsightsName string = '${abbrs.insightsComponents}${resourceToken}'
output actionGroupName string = '${abbrs.insightsActionGroups}${resourceToken}'
output alertNamePrefix string = '${abbrs.insightsAlerts}cp-${environmentSlug}'
output availabilityTestName string = '${abbrs.insightsWebTests}health-${resourceToken}'
output keyVaultEventsTopicName string = '${abbrs.eventGridSystemTopics}kv-${resourceToken}'
