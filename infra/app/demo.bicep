// The optional demo (createDemo): a DPS on S1 with two IoT hubs linked to it, so that `azd up`
// ends with something a device can register against. The postdeploy hook points an enrollment
// group of this DPS at the webhook.
param dpsName string
param hubNames array
param location string
param tags object

@description('IoT Hub tier of the demo hubs. S1 carries device twins, which the webhook\'s initialTwin sets.')
@allowed(['B1', 'S1'])
param hubSku string = 'S1'

resource hubs 'Microsoft.Devices/IotHubs@2023-06-30' = [for name in hubNames: {
  name: name
  location: location
  tags: tags
  sku: {
    name: hubSku
    capacity: 1
  }
}]

// DPS links a hub with a connection string of its iothubowner policy: the linked-hub API has no
// identity-based form in this API version.
resource dps 'Microsoft.Devices/provisioningServices@2022-12-12' = {
  name: dpsName
  location: location
  tags: tags
  sku: {
    name: 'S1'
    capacity: 1
  }
  properties: {
    iotHubs: [for (name, i) in hubNames: {
      connectionString: 'HostName=${hubs[i].properties.hostName};SharedAccessKeyName=iothubowner;SharedAccessKey=${hubs[i].listKeys().value[0].primaryKey}'
      location: location
    }]
  }
}

output dpsName string = dps.name
output hubHostNames array = [for (name, i) in hubNames: hubs[i].properties.hostName]
