"""Bounds on what a request may make us do, each a documented part of the contract."""

from typing import Final

# DPS's own maximum message size (the DPS limits page); a larger body cannot be a real request.
MAX_BODY_BYTES: Final = 96 * 1024

# The deepest a request body may nest. The DPS envelope uses 3 levels before the device payload
# starts, so a device payload gets 29 levels of its own; real payloads use a handful.
MAX_JSON_DEPTH: Final = 32

# DPS retries 429/5xx on its own schedule (1 s, then +9 s each time); Retry-After tells any other
# caller the same.
RETRY_AFTER_SECONDS: Final = 10

# How often a failed policy load is tried again, at most.
POLICY_RETRY_SECONDS: Final = 5.0
