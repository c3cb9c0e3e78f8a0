"""Fuzzing the core entry point, ``allocation.webhook.handle``: see fuzz/README.md."""
