"""Reference device client for our DPS custom allocation webhook.

Follows the device-side half of the DPS reprovisioning guidance: cache the assignment, connect
to the cached hub directly, retry it correctly, go back to DPS only when it fails, reprovision on
demand, and send the evidence the `latency` strategy needs. See `device/README.md`.

`device.azure_transport` (azure-iot-device) is imported only by the example (`python -m device`);
everything else runs on the standard library.
"""

from device.boot import Device
from device.transport import Assignment

__all__ = ["Assignment", "Device"]
