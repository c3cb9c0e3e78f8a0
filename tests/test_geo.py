"""Azure region positions, great-circle distance, and the distance-to-round-trip estimate."""

from __future__ import annotations

import math

import pytest

from allocation import geo
from allocation.geo import Position

EQUATOR_QUARTER_KM = math.pi * geo.EARTH_RADIUS_KM / 2  # 0°N 0°E to 0°N 90°E, about 10 008 km


def test_the_region_table_is_read_once_and_lists_the_public_cloud() -> None:
    assert geo.azure_regions() is geo.azure_regions()
    assert len(geo.azure_regions()) >= 50
    assert all(name == name.lower() for name in geo.azure_regions())


def test_a_region_is_found_by_its_name_in_any_case() -> None:
    amsterdam = geo.region_position("westeurope")
    assert amsterdam is not None
    assert geo.region_position("WestEurope") == amsterdam
    assert amsterdam.latitude == pytest.approx(52.4, abs=1)
    assert amsterdam.longitude == pytest.approx(4.9, abs=1)


@pytest.mark.parametrize("name", ["", "west europe", "mars", "usgovvirginia", "global"])
def test_an_unknown_region_has_no_position(name: str) -> None:
    assert geo.region_position(name) is None


@pytest.mark.parametrize(
    ("a", "b", "km"),
    [
        pytest.param(Position(0, 0), Position(0, 0), 0.0, id="same-point"),
        pytest.param(Position(0, 0), Position(0, 90), EQUATOR_QUARTER_KM, id="quarter-equator"),
        pytest.param(Position(0, 0), Position(90, 0), EQUATOR_QUARTER_KM, id="equator-to-pole"),
        pytest.param(Position(0, 0), Position(0, 180), 2 * EQUATOR_QUARTER_KM, id="antipodes"),
        pytest.param(Position(0, 179.5), Position(0, -179.5), 111.19, id="across-date-line"),
        # London Heathrow to New York JFK: about 5 540 km by great circle.
        pytest.param(Position(51.47, -0.45), Position(40.64, -73.78), 5540, id="lhr-jfk"),
    ],
)
def test_great_circle_distance(a: Position, b: Position, km: float) -> None:
    assert geo.distance_km(a, b) == pytest.approx(km, rel=0.005, abs=0.01)
    assert geo.distance_km(b, a) == pytest.approx(geo.distance_km(a, b))


def test_azure_neighbours_are_nearer_than_other_continents() -> None:
    def between(a: str, b: str) -> float:
        first, second = geo.region_position(a), geo.region_position(b)
        assert first is not None
        assert second is not None
        return geo.distance_km(first, second)

    assert 600 < between("westeurope", "northeurope") < 900
    assert between("westeurope", "eastus") > 5 * between("westeurope", "northeurope")


def test_round_trip_estimate_is_there_and_back_through_fibre_along_an_inflated_route() -> None:
    # 1000 km: 2 x 1000 km x 2.1 / 200 km per ms.
    assert geo.estimated_rtt_ms(1000) == pytest.approx(21.0)
    assert geo.estimated_rtt_ms(0) == 0
    assert geo.estimated_rtt_ms(2000) == pytest.approx(2 * geo.estimated_rtt_ms(1000))


def test_estimates_between_azure_regions_are_of_the_right_order() -> None:
    # Azure's published round trips between its European regions ran from 3 to 28 ms
    # (learn.microsoft.com, "Azure network round-trip latency statistics", October 2019).
    west, north, east = (geo.region_position(n) for n in ("westeurope", "northeurope", "eastus"))
    assert west is not None
    assert north is not None
    assert east is not None
    to_dublin = geo.estimated_rtt_ms(geo.distance_km(west, north))
    to_virginia = geo.estimated_rtt_ms(geo.distance_km(west, east))
    assert 3 < to_dublin < 28
    assert 28 < to_virginia < 160
