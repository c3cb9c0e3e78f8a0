// The function app on Flex Consumption: Linux, Python, remote build from requirements.txt (azd
// deploys the source and Flex Consumption's build installs requirements.txt), one user-assigned
// identity for storage, monitoring and the deployment package.
param name string
param planName string
param location string
param tags object
@allowed(['3.11', '3.12'])
param pythonVersion string
param maximumInstanceCount int
param alwaysReadyInstances int
param identityId string
param identityClientId string
param hostAccountName string
param deploymentContainerUrl string
param dataBlobServiceUri string
param dataTableServiceUri string
@description('ALLOCATION_POLICY_BLOB: <container>/<path> of the policy in the data account.')
param policyBlob string
param applicationInsightsName string

@description('Memory of each instance; 2048 MB is the Flex Consumption default.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Spread instances over availability zones. Flex Consumption then keeps at least two always-ready instances per function group, billed while idle.')
param zoneRedundant bool = false

// Settings the host reads (AzureWebJobsStorage__*, APPLICATIONINSIGHTS_*) and settings the
// webhook reads (ALLOCATION_*; README.md, "Settings"). Flex Consumption takes the runtime from
// functionAppConfig, so FUNCTIONS_WORKER_RUNTIME is not set here.
var appSettings = {
  AzureWebJobsStorage__accountName: hostAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  ALLOCATION_STORAGE__blobServiceUri: dataBlobServiceUri
  ALLOCATION_STORAGE__tableServiceUri: dataTableServiceUri
  ALLOCATION_STORAGE__clientId: identityClientId
  ALLOCATION_POLICY_BLOB: policyBlob
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
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
  // checkov:skip=CKV_AZURE_225: zone redundancy is the zoneRedundant parameter, off by default: on Flex Consumption it keeps two always-ready instances per group, billed while idle
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  // azd finds the app to deploy `services.api` (azure.yaml) to by this tag.
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  // checkov:skip=CKV_AZURE_222: DPS calls the webhook over the internet; the function key (and DPS's TLS) guard it
  // checkov:skip=CKV_AZURE_17: DPS presents no client certificate to a custom allocation webhook; it authenticates with the function key
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales per request; warm instances are the alwaysReadyInstances parameter, off by default to scale to zero
  // checkov:skip=CKV_AZURE_213: Flex Consumption has no App Service health check; /api/health is for operators and probes
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [for setting in items(appSettings): { name: setting.key, value: setting.value }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        // 'http' is the group of every HTTP-triggered function (allocate, health).
        alwaysReady: alwaysReadyInstances > 0 ? [{ name: 'http', instanceCount: alwaysReadyInstances }] : []
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// Publishing goes through Microsoft Entra ID (azd, func, az): no FTP or basic-auth credentials.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: { allow: false }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: { allow: false }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
