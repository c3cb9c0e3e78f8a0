"""The JSON shapes (allocation.shapes) and the TypedDicts that describe what they validate into."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

import pytest
from pydantic_core import SchemaValidator, ValidationError

from allocation import contract
from allocation.requests import parse_request
from allocation.shapes import BOOLEAN, STRING, json_object, optional
from tests.conftest import SAMPLE_REQUESTS


class Probe(TypedDict):
    name: str
    enabled: bool


def probe(unknown: Any = "forbid", **aliases: list[str]) -> SchemaValidator:
    fields = {"name": STRING, "enabled": optional(BOOLEAN, False)}
    return SchemaValidator(json_object(fields, title=Probe, unknown=unknown, aliases=aliases))


def test_a_shape_and_its_typeddict_must_name_the_same_fields() -> None:
    with pytest.raises(TypeError, match="Probe"):
        json_object({"name": STRING}, title=Probe, unknown="ignore")


def test_absent_optional_fields_take_their_default() -> None:
    assert probe().validate_python({"name": "a"}) == {"name": "a", "enabled": False}


def test_required_fields_and_strict_types_are_errors_at_their_path() -> None:
    with pytest.raises(ValidationError) as raised:
        probe().validate_python({"enabled": "true"})
    assert {(e["loc"], e["type"]) for e in raised.value.errors()} == {
        (("name",), "missing"),
        (("enabled",), "bool_type"),
    }


def test_unknown_fields_are_refused_or_ignored_as_the_shape_says() -> None:
    with pytest.raises(ValidationError) as raised:
        probe().validate_python({"name": "a", "nmae": "b"})
    assert [e["type"] for e in raised.value.errors()] == ["extra_forbidden"]
    assert probe(unknown="ignore").validate_python({"name": "a", "nmae": "b"}) == {
        "name": "a",
        "enabled": False,
    }


def test_an_alias_is_read_under_the_fields_own_name() -> None:
    shape = probe(unknown="ignore", name=["Name"])
    assert shape.validate_python({"Name": "a"})["name"] == "a"
    assert shape.validate_python({"name": "a", "Name": "b"})["name"] == "a"


def keys(cls: type) -> set[str]:
    return set(cls.__annotations__)


@pytest.mark.parametrize("sample", SAMPLE_REQUESTS, ids=lambda p: p.stem)
def test_a_validated_request_has_exactly_the_keys_its_typeddicts_name(sample: Path) -> None:
    request = parse_request(sample.read_bytes())
    assert set(request) == keys(contract.AllocationRequest)
    assert set(request["deviceRuntimeContext"]) == keys(contract.DeviceRuntimeContext)
    group, individual = request["enrollmentGroup"], request["individualEnrollment"]
    if group is not None:
        assert set(group) == keys(contract.EnrollmentGroup)
        enrollment: Any = group
    else:
        assert individual is not None
        assert set(individual) == keys(contract.IndividualEnrollment)
        enrollment = individual
    for name, cls in [
        ("attestation", contract.Attestation),
        ("capabilities", contract.Capabilities),
        ("reprovisionPolicy", contract.ReprovisionPolicy),
    ]:
        if enrollment[name] is not None:
            assert set(enrollment[name]) == keys(cls)
