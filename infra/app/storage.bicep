// Two storage accounts, so that the app's identity can read the policy but never write it:
// - the host account: AzureWebJobsStorage (the Functions host's keys and locks) and the
//   deployment container. The host needs Blob Data Owner on it, account-wide.
// - the data account: the `policies` container (ALLOCATION_POLICY_BLOB) and the `devices` table,
//   which the app only reads. Operators publish into it with their own sign-in.
// Both refuse shared keys: every caller, the host included, signs in with Microsoft Entra ID.
param hostAccountName string
param dataAccountName string
param deploymentContainerName string
param location string
param tags object
param identityPrincipalId string
@description('A user who may publish policies and edit the devices table; empty for none.')
param userPrincipalId string = ''
@allowed(['User', 'ServicePrincipal'])
param userPrincipalType string = 'User'

var policiesContainerName = 'policies'
var policyBlobName = 'policy.json'
var devicesTableName = 'devices'

var roles = {
  blobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  blobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  blobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  tableDataReader: '76199698-9eea-4c19-bc75-cec21354c6b6'
  tableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
}

var accountProperties = {
  accessTier: 'Hot'
  allowBlobPublicAccess: false
  allowSharedKeyAccess: false
  allowCrossTenantReplication: false
  defaultToOAuthAuthentication: true
  isLocalUserEnabled: false
  isSftpEnabled: false
  minimumTlsVersion: 'TLS1_2'
  supportsHttpsTrafficOnly: true
  publicNetworkAccess: 'Enabled'
  networkAcls: {
    bypass: 'AzureServices'
    defaultAction: 'Allow'
  }
}

resource hostAccount 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: hostAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: accountProperties
  // checkov:skip=CKV_AZURE_35: Flex Consumption without a virtual network reaches its storage over public endpoints; Entra ID with shared keys off guards them
  // checkov:skip=CKV_AZURE_59: public network access is how an app without a virtual network reaches its storage; shared keys are off
  // checkov:skip=CKV_AZURE_43: the name is a parameter, 'sthost' or 'stdata' and a 13-character uniqueString: lowercase letters and digits, 19 characters
  // checkov:skip=CKV_AZURE_206: holds only the host's state and the deployment package, both rebuilt by azd deploy: locally redundant is enough
}

resource hostBlobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: hostAccount
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: hostBlobs
  name: deploymentContainerName
  properties: { publicAccess: 'None' }
}

resource dataAccount 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: dataAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  // Zone-redundant: the policy and the device table are the service's state.
  sku: { name: 'Standard_ZRS' }
  properties: accountProperties
  // checkov:skip=CKV_AZURE_35: Flex Consumption without a virtual network reaches its storage over public endpoints; Entra ID with shared keys off guards them
  // checkov:skip=CKV_AZURE_59: public network access is how an app without a virtual network reaches its storage; shared keys are off
  // checkov:skip=CKV_AZURE_43: the name is a parameter, 'sthost' or 'stdata' and a 13-character uniqueString: lowercase letters and digits, 19 characters
  // checkov:skip=CKV_AZURE_206: zone-redundant; the policy's blob versions and the publisher's own copy restore it, so geo-replication is left to the operator
}

resource dataBlobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: dataAccount
  name: 'default'
  properties: {
    // A published policy can be brought back: every overwrite keeps the previous version.
    isVersioningEnabled: true
    deleteRetentionPolicy: { enabled: true, days: 30 }
    containerDeleteRetentionPolicy: { enabled: true, days: 30 }
  }
}

resource policiesContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: dataBlobs
  name: policiesContainerName
  properties: { publicAccess: 'None' }
}

resource dataTables 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: dataAccount
  name: 'default'
}

resource devicesTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: dataTables
  name: devicesTableName
}

// The Functions host keeps its keys and locks in blobs of AzureWebJobsStorage, and Flex
// Consumption reads the package from the deployment container: Blob Data Owner, on the host
// account only.
resource hostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostAccount.id, identityPrincipalId, roles.blobDataOwner)
  scope: hostAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataOwner)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource policiesReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(policiesContainer.id, identityPrincipalId, roles.blobDataReader)
  scope: policiesContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataReader)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource devicesReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(devicesTable.id, identityPrincipalId, roles.tableDataReader)
  scope: devicesTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.tableDataReader)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The user who runs azd publishes policies (python -m allocation publish) and fills the table
// (python -m allocation inventory load).
resource policiesPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(policiesContainer.id, userPrincipalId, roles.blobDataContributor)
  scope: policiesContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

// On the account, not the table: `inventory load` creates its table when it is missing, which a
// role scoped to one table does not allow.
resource devicesEditor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(dataAccount.id, userPrincipalId, roles.tableDataContributor)
  scope: dataAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.tableDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

output hostAccountName string = hostAccount.name
output deploymentContainerUrl string = '${hostAccount.properties.primaryEndpoints.blob}${deploymentContainer.name}'
output dataBlobServiceUri string = dataAccount.properties.primaryEndpoints.blob
output dataTableServiceUri string = dataAccount.properties.primaryEndpoints.table
output policyBlob string = '${policiesContainer.name}/${policyBlobName}'
output policyBlobUrl string = '${dataAccount.properties.primaryEndpoints.blob}${policiesContainer.name}/${policyBlobName}'
output devicesTableUrl string = '${dataAccount.properties.primaryEndpoints.table}${devicesTable.name}'
