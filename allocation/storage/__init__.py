"""Azure Storage: the connection named ALLOCATION_STORAGE, and what the webhook keeps there.

Nothing in this package imports an Azure SDK at import time: the SDKs are loaded only when a
setting or the policy uses storage, so the default policy's cold start does not pay for them.
"""
