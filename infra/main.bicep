// The Azure side of the allocation webhook, for `azd up`: a Function App on Flex Consumption,
// its storage, monitoring (a workbook and alert rules on the decision log lines) and, behind
// createDemo, a DPS with two linked IoT hubs for the postdeploy hook to point at the function.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; it names the resource group and seeds resource names.')
param environmentName string

@minLength(1)
@description('Region of every resource. It must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
@metadata({ azd: { type: 'location' } })
param location string

@description('Python version of the function app.')
@allowed(['3.11', '3.12'])
param pythonVersion string = '3.11'

@description('Most instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Instances kept warm for HTTP functions: DPS waits on the webhook during a registration, and a cold start adds to it. 0 scales to zero.')
@minValue(0)
@maxValue(10)
param alwaysReadyInstances int = 0

@description('Object id of the user running azd (set by azd): may publish policies and edit the devices table. Empty: no access for a user.')
param principalId string = ''

@description('Kind of principal principalId is: User, or ServicePrincipal when azd runs in a pipeline.')
@allowed(['User', 'ServicePrincipal'])
param principalType string = 'User'

@description('Address that alert rules notify. Empty: the rules fire in the portal only.')
param alertEmail string = ''

@description('Also deploy a DPS (S1) with two linked IoT hubs, so that azd up ends with something a device can register against.')
param createDemo bool = false

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-alloc-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    identityPrincipalId: identity.outputs.principalId
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    hostAccountName: 'sthost${resourceToken}'
    dataAccountName: 'stdata${resourceToken}'
    deploymentContainerName: 'app-package-${resourceToken}'
    location: location
    tags: tags
    identityPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

module function 'app/function.bicep' = {
  name: 'function'
  scope: rg
  params: {
    name: 'func-alloc-${resourceToken}'
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    pythonVersion: pythonVersion
    maximumInstanceCount: maximumInstanceCount
    alwaysReadyInstances: alwaysReadyInstances
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    hostAccountName: storage.outputs.hostAccountName
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    dataBlobServiceUri: storage.outputs.dataBlobServiceUri
    dataTableServiceUri: storage.outputs.dataTableServiceUri
    policyBlob: storage.outputs.policyBlob
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module dashboards 'app/dashboards.bicep' = {
  name: 'dashboards'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    workbookSeed: resourceToken
    alertEmail: alertEmail
  }
}

module demo 'app/demo.bicep' = if (createDemo) {
  name: 'demo'
  scope: rg
  params: {
    dpsName: 'provs-${resourceToken}'
    hubNames: ['iot-${resourceToken}-a', 'iot-${resourceToken}-b']
    location: location
    tags: tags
  }
}

// azd writes these into the environment; the postdeploy hook (infra/hooks/postdeploy.py) reads them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = function.outputs.name
output AZURE_FUNCTION_HOSTNAME string = function.outputs.defaultHostName
output AZURE_POLICY_BLOB_URL string = storage.outputs.policyBlobUrl
output AZURE_DEVICES_TABLE_URL string = storage.outputs.devicesTableUrl
output AZURE_WORKBOOK_ID string = dashboards.outputs.workbookId
// Named as the app settings, so that the operator's tools (python -m allocation publish, validate)
// reach the same policy and table after `set -a; eval "$(azd env get-values)"; set +a`.
output ALLOCATION_STORAGE__blobServiceUri string = storage.outputs.dataBlobServiceUri
output ALLOCATION_STORAGE__tableServiceUri string = storage.outputs.dataTableServiceUri
output ALLOCATION_POLICY_BLOB string = storage.outputs.policyBlob
output DEMO_DPS_NAME string = createDemo ? demo.outputs.dpsName : ''
output DEMO_DPS_RESOURCE_GROUP string = createDemo ? rg.name : ''
output DEMO_DPS_IOT_HUBS string = createDemo ? join(demo.outputs.hubHostNames, ' ') : ''
