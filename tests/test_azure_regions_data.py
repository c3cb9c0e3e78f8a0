"""The built-in table of Azure region coordinates used by the lowest-latency strategy."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

import allocation

DATA_FILE = Path(allocation.__file__).parent / "data" / "azure_regions.json"


@pytest.fixture(scope="module")
def table() -> dict[str, Any]:
    with DATA_FILE.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


@pytest.fixture(scope="module")
def regions(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = table["regions"]
    return found


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _km_between(a: dict[str, Any], b: dict[str, Any]) -> float:
    lat1, lon1, lat2, lon2 = map(
        math.radians, (a["latitude"], a["longitude"], b["latitude"], b["longitude"])
    )
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def test_the_table_says_where_its_figures_come_from(table: dict[str, Any]) -> None:
    assert isinstance(table["source"], str)
    assert table["source"].strip()


def test_the_table_covers_the_public_cloud(regions: dict[str, dict[str, Any]]) -> None:
    assert len(regions) >= 50


def test_keys_are_programmatic_region_names(regions: dict[str, dict[str, Any]]) -> None:
    malformed = [name for name in regions if not re.fullmatch(r"[a-z0-9]+", name)]
    assert malformed == []


def test_regions_are_listed_in_key_order(regions: dict[str, dict[str, Any]]) -> None:
    assert list(regions) == sorted(regions)


def test_every_region_has_a_position_on_the_globe(regions: dict[str, dict[str, Any]]) -> None:
    off_globe = {
        name: (region.get("latitude"), region.get("longitude"))
        for name, region in regions.items()
        if not (
            _is_number(region.get("latitude"))
            and _is_number(region.get("longitude"))
            and -90 <= region["latitude"] <= 90
            and -180 <= region["longitude"] <= 180
        )
    }
    assert off_globe == {}


def test_every_region_has_a_display_name_and_geography(regions: dict[str, dict[str, Any]]) -> None:
    incomplete = [
        name
        for name, region in regions.items()
        if not (
            isinstance(region.get("displayName"), str)
            and region["displayName"].strip()
            and isinstance(region.get("geography"), str)
            and region["geography"].strip()
        )
    ]
    assert incomplete == []


def test_display_name_is_the_spelled_out_key(regions: dict[str, dict[str, Any]]) -> None:
    # "Germany West Central" is germanywestcentral, "UK South" is uksouth.
    mismatched = {
        name: region["displayName"]
        for name, region in regions.items()
        if region["displayName"].replace(" ", "").lower() != name
    }
    assert mismatched == {}


@pytest.mark.parametrize(
    ("name", "latitude", "longitude"),
    [
        pytest.param("westeurope", 52.4, 4.9, id="westeurope-netherlands"),
        pytest.param("northeurope", 53.3, -6.3, id="northeurope-ireland"),
        pytest.param("eastus", 37.4, -79.8, id="eastus-virginia"),
        pytest.param("japaneast", 35.7, 139.8, id="japaneast-tokyo"),
        pytest.param("australiaeast", -33.9, 151.2, id="australiaeast-sydney"),
        pytest.param("swedencentral", 60.7, 17.1, id="swedencentral-gavle"),
        pytest.param("newzealandnorth", -36.8, 174.8, id="newzealandnorth-auckland"),
        pytest.param("chilecentral", -33.4, -70.7, id="chilecentral-santiago"),
    ],
)
def test_well_known_regions_sit_where_they_are(
    regions: dict[str, dict[str, Any]], name: str, latitude: float, longitude: float
) -> None:
    region = regions[name]
    assert region["latitude"] == pytest.approx(latitude, abs=1.0)
    assert region["longitude"] == pytest.approx(longitude, abs=1.0)


def test_neighbouring_regions_are_nearer_than_other_continents(
    regions: dict[str, dict[str, Any]],
) -> None:
    amsterdam_to_dublin = _km_between(regions["westeurope"], regions["northeurope"])
    amsterdam_to_virginia = _km_between(regions["westeurope"], regions["eastus"])
    assert 600 < amsterdam_to_dublin < 900
    assert amsterdam_to_virginia > 5 * amsterdam_to_dublin


@pytest.mark.parametrize(
    "name",
    [
        "global",  # logical: no coordinates
        "europe",  # geography alias
        "unitedstates",
        "eastusstg",  # staging
        "eastus2euap",  # canary
        "centraluseuap",
        "usgovvirginia",  # sovereign clouds are not in the public ARM list
        "chinanorth",
    ],
)
def test_logical_staging_canary_and_sovereign_names_are_left_out(
    regions: dict[str, dict[str, Any]], name: str
) -> None:
    assert name not in regions


def test_the_file_stays_small() -> None:
    assert DATA_FILE.stat().st_size < 40 * 1024
