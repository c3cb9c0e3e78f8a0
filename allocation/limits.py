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

# How often, at most, a policy file is checked for changes and a failed load is tried again.
POLICY_CHECK_SECONDS: Final = 5.0

# The longest a plug-in strategy may take to choose; past it the request gets a 503.
PLUGIN_TIMEOUT_SECONDS: Final = 2.0

# A registration ID, in characters: DPS supports registration IDs up to 128 characters long
# (DPS terminology, "Registration ID"), so a longer one never comes from DPS. Refused before
# any work that reads it.
MAX_REGISTRATION_ID_LENGTH: Final = 128

# Hubs in linkedHubs. DPS links at most 50 hubs to an instance, a limit that cannot be raised
# (the DPS limits page), and linkedHubs lists some of them; the bound, a margin above that,
# keeps the work of one request (host names validated, hashed and looked up) small whatever a
# caller sends. At 256, one request could cost three times what json.loads takes on its body.
MAX_LINKED_HUBS: Final = 64

# Object keys in a device's payload, counted at every level. 10,000 is far beyond any real
# payload and still fits the body limit.
MAX_PAYLOAD_KEYS: Final = 10_000

# A rendered initial twin, or payload, as JSON: IoT Hub keeps twin tags and desired properties
# to 32 KB each, and DPS passes the payload inside its own 96 KB message.
MAX_RENDERED_BYTES: Final = 32 * 1024

# Hash keys. A weighted strategy's `key` may render at most this many characters for a device
# (a 400 beyond). Any longer key in UTF-8, such as a long registration ID, is hashed as its first
# this many bytes and a 128-bit digest of all of it (allocation.rendezvous): each linked hub
# hashes the key again, and real keys are far shorter.
MAX_HASH_KEY_LENGTH: Final = 256

# Hubs held by each cache of what is derived from a linkedHubs list (allocation.hub_list_cache):
# 64 lists of 64 hubs, or 400 of 10. Real deployments send a few distinct lists; the bound caps
# what a caller sending endless variations makes us hold, at about 1 KB per hub of the longest
# host names.
MAX_CACHED_HUBS: Final = 4096

# A registration or enrollment ID in a log line, in characters; the rest is counted, not written.
MAX_LOGGED_ID_LENGTH: Final = 256
