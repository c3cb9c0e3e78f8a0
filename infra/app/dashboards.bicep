// The workbook and the alert rules, both built on the webhook's log lines in App Insights
// `traces` (one JSON object per request; README.md, "Logs"). Their queries live in
// workbook.json and alerts.json, where tests/test_infra.py checks every field they read
// against lines the webhook really writes.
param location string
param tags object
param applicationInsightsName string
@description('Seeds the workbook\'s name, which must be a GUID.')
param workbookSeed string
@description('Address the alert rules notify; empty: no action group, the alerts show in the portal.')
param alertEmail string = ''

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, 'allocation-webhook-workbook', workbookSeed)
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'DPS allocation webhook'
    category: 'workbook'
    sourceId: appInsights.id
    serializedData: string(union(loadJsonContent('workbook.json'), { fallbackResourceIds: [appInsights.id] }))
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-allocation-webhook'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'allocation'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [for rule in loadJsonContent('alerts.json'): {
  name: 'alert-${rule.name}'
  location: location
  tags: tags
  properties: {
    displayName: rule.displayName
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [appInsights.id]
    evaluationFrequency: rule.evaluationFrequency
    windowSize: rule.windowSize
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: empty(alertEmail) ? [] : [actionGroup.id]
    }
  }
}]

output workbookId string = workbook.id
