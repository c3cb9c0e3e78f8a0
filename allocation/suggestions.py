""" "Did you mean ...?": the closest known name to a misspelt one, for every message that has one.

Policy fields, operators, strategies, and the hub names, tags and regions that ``validate
--linked-hubs`` checks all suggest through here, so a typo reads the same wherever it is made.
Closeness is difflib's ratio (at least 0.6, its default), else the same name in another case.
"""

from __future__ import annotations

from collections.abc import Iterable


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name``, or None when none is close."""
    import difflib  # noqa: PLC0415 - only a policy with a typo needs it

    candidates = [k for k in dict.fromkeys(known) if k != name]
    close = difflib.get_close_matches(name, candidates, n=1)
    if close:
        return close[0]
    folded = [k for k in candidates if k.lower() == name.lower()]
    return folded[0] if folded else None


def closest_host(name: str, hosts: Iterable[str]) -> str | None:
    """The closest host name, compared on the hub's own name (the first label): every IoT hub
    shares '.azure-devices.net', which would make any two hubs look alike."""
    by_label: dict[str, str] = {}
    for host in hosts:
        by_label.setdefault(host.partition(".")[0].lower(), host)
    label = name.partition(".")[0].lower()
    if label in by_label and by_label[label].lower() != name.lower():
        return by_label[label]  # the same hub, another domain: 'hub.azure-device.net'
    match = closest(label, by_label)
    return by_label[match] if match is not None else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for a message about ``name``, or '' when nothing is close."""
    match = closest(name, known)
    return f" (did you mean '{match}'?)" if match is not None else ""
