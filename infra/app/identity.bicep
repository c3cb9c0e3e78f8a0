// The app's one identity. User-assigned, so that role assignments exist before the app starts,
// and the app settings name it (AzureWebJobsStorage__clientId, ALLOCATION_STORAGE__clientId).
param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
