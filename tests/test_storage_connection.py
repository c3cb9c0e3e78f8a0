"""The ALLOCATION_STORAGE connection, read as Functions reads identity-based connections."""

from __future__ import annotations

import subprocess
import sys

from allocation.storage.connection import (
    StorageClients,
    connection_from_settings,
)
from tests.azurite import AzuriteServer


def test_a_connection_string_is_read_from_the_connection_name() -> None:
    connection = connection_from_settings({"ALLOCATION_STORAGE": "UseDevelopmentStorage=true"})
    assert connection.connection_string == "UseDevelopmentStorage=true"
    assert connection.configured
    assert connection.describe() == "connection string"


def test_service_uris_and_client_id_follow_the_double_underscore_convention() -> None:
    connection = connection_from_settings(
        {
            "ALLOCATION_STORAGE__blobServiceUri": "https://acct.blob.core.windows.net",
            "ALLOCATION_STORAGE__tableServiceUri": "https://acct.table.core.windows.net",
            "ALLOCATION_STORAGE__clientId": "00000000-0000-0000-0000-000000000001",
        }
    )
    assert connection.connection_string is None
    assert connection.blob_service_uri == "https://acct.blob.core.windows.net"
    assert connection.client_id == "00000000-0000-0000-0000-000000000001"
    assert "acct.blob" in connection.describe()


def test_no_setting_means_no_storage() -> None:
    assert not connection_from_settings({}).configured


def test_clients_reach_azurite_through_the_connection_string(azurite: AzuriteServer) -> None:
    clients = StorageClients(
        connection_from_settings({"ALLOCATION_STORAGE": azurite.connection_string})
    )
    container = clients.blob().get_container_client("connection-test")
    container.create_container()
    container.upload_blob("hello.txt", b"hello")
    assert container.download_blob("hello.txt").readall() == b"hello"
    table = clients.table().create_table_if_not_exists("connectiontest")
    table.upsert_entity({"PartitionKey": "p", "RowKey": "r", "hub": "hub-a"})
    assert table.get_entity("p", "r")["hub"] == "hub-a"
    assert clients.blob() is clients.blob()


def test_importing_the_storage_package_loads_no_azure_sdk() -> None:
    code = (
        "import sys, allocation.storage.connection, function_app;"
        "print(sorted(m for m in sys.modules if m.startswith(('azure.storage','azure.data','azure.identity'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
