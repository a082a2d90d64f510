// Log Analytics workspace, workspace-based Application Insights, and the action group every
// alert notifies. Local (instrumentation-key) authentication is off: telemetry is accepted
// only from Entra identities holding Monitoring Metrics Publisher on the component.

param logAnalyticsName string
param applicationInsightsName string
param actionGroupName string
param location string
param tags object

@description('Optional e-mail address of the operator. Empty: the action group has no receiver yet, and the alerts show in the portal only.')
param alertEmail string

@description('Days the workspace keeps logs (30 is included in the ingestion price).')
@minValue(30)
@maxValue(730)
param retentionInDays int

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-07-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      disableLocalAuth: true
    }
  }
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

// One action group for every alert of this environment. Without an address it has no
// receiver: the alerts still fire and are listed in the portal, and an e-mail, SMS or webhook
// receiver can be added later (docs/deploy.md).
resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'chargepilot'
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

output applicationInsightsName string = applicationInsights.name
// The connection string names the component; it is not a credential once local auth is off.
output applicationInsightsConnectionString string = applicationInsights.properties.ConnectionString
output logAnalyticsName string = workspace.name
output logAnalyticsWorkspaceId string = workspace.id
output actionGroupName string = actionGroup.name
output actionGroupId string = actionGroup.id
