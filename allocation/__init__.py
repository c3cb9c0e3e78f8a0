"""Custom allocation for Azure IoT Hub Device Provisioning Service.

The package is the host-independent core: every host (the Azure Function, the local host, the
command line) calls :func:`allocation.webhook.handle` with the raw request body.
"""
