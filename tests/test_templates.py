"""Templates: how a string becomes a value for one device."""

from __future__ import annotations

import re
from typing import Any

import pytest

from allocation.context import MISSING
from allocation.errors import PolicyError
from allocation.templates import (
    REQUEST_FIELDS,
    Budget,
    TemplateString,
    compile_json,
    parse_template,
)

VALUES: dict[str, Any] = {
    "registrationId": "dev-1",
    "hub": "hub-a.azure-devices.net",
    "payload.count": 3,
    "payload.flag": False,
    "payload.tags": ["a", "b"],
    "payload.name": "Zoë",
}


def render(text: str) -> Any:
    template = parse_template(text, ("t",))
    if isinstance(template, str):
        return template
    return template.render(lambda name: VALUES.get(name, MISSING), Budget(1000))


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("plain", "plain"),
        ("{registrationId}", "dev-1"),
        ("id={registrationId}@{hub}", "id=dev-1@hub-a.azure-devices.net"),
        ("{payload.count}", 3),
        ("{payload.flag}", False),
        ("{payload.tags}", ["a", "b"]),
        ("n={payload.count} tags={payload.tags}", 'n=3 tags=["a","b"]'),
        ("{payload.name}!", "Zoë!"),
        ("{payload.absent}", ""),
        ("[{payload.absent}]", "[]"),
        ("{{literal}}", "{literal}"),
        ("{{{registrationId}}}", "{dev-1}"),
        ("}}{{", "}{"),
    ],
)
def test_rendering(text: str, rendered: Any) -> None:
    assert render(text) == rendered


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{unknown}", "unknown template field '{unknown}'"),
        ("{payload.}", "unknown template field"),
        ("{ registrationId }", "unknown template field"),
        ("{registrationId", "unclosed '{'"),
        ("tail }", "unmatched '}'"),
    ],
)
def test_template_errors_name_the_path(text: str, words: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_template(text, ("default", "payload", "greeting"))
    [problem] = raised.value.problems
    assert problem.path == "default.payload.greeting"
    assert words in problem.message


def test_a_key_cannot_name_the_hub_it_chooses() -> None:
    with pytest.raises(PolicyError, match=re.escape("unknown template field '{hub}'")):
        parse_template("{hub}", ("default", "key"), REQUEST_FIELDS)


def test_json_documents_report_every_bad_string() -> None:
    with pytest.raises(PolicyError) as raised:
        compile_json({"a": "{x}", "b": ["ok", "{y}"]}, ("payload",))
    assert [p.path for p in raised.value.problems] == ["payload.a", "payload.b[1]"]


def test_a_document_without_templates_is_returned_as_is() -> None:
    document = {"a": 1, "b": ["x"]}
    template = compile_json(document, ("payload",))
    assert not template.has_fields
    assert template.render(lambda name: MISSING, 1000) == document
    assert isinstance(parse_template("{x} {y}".replace("{", "{{").replace("}", "}}"), ()), str)
    assert isinstance(parse_template("{hub}", ()), TemplateString)
