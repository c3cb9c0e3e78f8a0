"""IoT hub host names: what a valid one looks like, and how two are compared."""

from __future__ import annotations

import re
from typing import Final

# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens, 1-63 characters
# each, 253 in all. IoT hub host names (`<hub>.azure-devices.net`) are always of this form.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_NAME_PATTERN: Final = rf"^{_LABEL}(?:\.{_LABEL})*$"
MAX_HOST_NAME_LENGTH: Final = 253

_HOST_NAME = re.compile(HOST_NAME_PATTERN.replace("$", r"\Z"), re.ASCII)


def is_host_name(text: str) -> bool:
    return len(text) <= MAX_HOST_NAME_LENGTH and _HOST_NAME.match(text) is not None


def host_key(host_name: str) -> str:
    """The form host names are compared and hashed in: DNS names are case-insensitive."""
    return host_name.lower()
