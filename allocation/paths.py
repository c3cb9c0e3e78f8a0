"""JSON paths in the notation error messages use: ``enrollments["my-group"].hubs[2]``."""

from __future__ import annotations

import re
from collections.abc import Iterable

JsonPath = tuple[str | int, ...]

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")


def format_path(path: Iterable[str | int]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(part):
            text += f".{part}" if text else part
        else:
            quoted = part.replace("\\", "\\\\").replace('"', '\\"')
            # A lone surrogate (a JSON escape such as \ud800) is written as that escape: a
            # message must stay printable and encodable.
            quoted = quoted.encode("utf-8", "backslashreplace").decode("utf-8")
            text += f'["{quoted}"]'
    return text
