"""Weighted rendezvous hashing: pinned outputs, shares by weight, and minimal movement."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from allocation import rendezvous
from allocation.candidates import Candidate, HubSettings


def hubs(*spec: tuple[str, int]) -> list[Candidate]:
    return [Candidate(name, HubSettings(weight=weight)) for name, weight in spec]


def even(*names: str) -> list[Candidate]:
    return hubs(*((name, 1) for name in names))


A, B, C = "hub-a.azure-devices.net", "hub-b.azure-devices.net", "hub-c.azure-devices.net"
TOASTERS = "contoso-toasters-hub-1098.azure-devices.net"
HEATPUMPS = "contoso-heatpumps-hub-1098.azure-devices.net"
TEN = [f"hub-{i:02d}.azure-devices.net" for i in range(10)]
FIFTY = [f"hub-{i:02d}.azure-devices.net" for i in range(50)]

# Where devices live in production. A change to hashing that alters any row silently moves
# devices between hubs: such a change needs a new strategy name, never an edit here.
GOLDEN = [
    ("device-0001", even(A, B), B),
    ("device-0002", even(A, B), A),
    ("device-0003", even(A, B), A),
    ("device-0004", even(A, B, C), B),
    ("device-0005", even(A, B, C), A),
    ("device-0006", hubs((A, 1), (B, 3), (C, 6)), C),
    ("device-0007", hubs((A, 1), (B, 3), (C, 6)), C),
    ("device-0008", hubs((A, 1), (B, 3), (C, 6)), C),
    ("device-0009", hubs((A, 1000), (B, 1)), A),
    ("device-0010", hubs((A, 1), (B, 1000)), B),
    ("breakroom499-contoso-tstrsd-007", even(TOASTERS, HEATPUMPS), HEATPUMPS),
    ("breakroom499-contoso-hpsd-088", even(TOASTERS, HEATPUMPS), HEATPUMPS),
    ("WioTerminal", even("PVDemo-IoTHub.azure-devices.net", "pvdemo-iothub-2.azure-devices.net"),
     "pvdemo-iothub-2.azure-devices.net"),
    ("site-42", hubs(("eu-1.azure-devices.net", 5), ("eu-2.azure-devices.net", 5),
                     ("us-1.azure-devices.net", 10)), "us-1.azure-devices.net"),
    ("site-43", hubs(("eu-1.azure-devices.net", 5), ("eu-2.azure-devices.net", 5),
                     ("us-1.azure-devices.net", 10)), "us-1.azure-devices.net"),
    ("capteur-ñandú-01", even(A, B, C), C),
    ("传感器-7", even(A, B, C), B),
    ("🚀-rocket", hubs((A, 2), (B, 2)), A),
    ("x", even(*TEN), "hub-02.azure-devices.net"),
    ("y", hubs(*((name, i + 1) for i, name in enumerate(TEN))), "hub-03.azure-devices.net"),
    ("z" * 128, even(*FIFTY), "hub-29.azure-devices.net"),
    ("device-with-long-id-" + "0" * 100,
     hubs(("a.azure-devices.net", 7), ("b.azure-devices.net", 11), ("c.azure-devices.net", 13)),
     "b.azure-devices.net"),
    # Registration IDs are hashed as sent; host names in lower case, answered as sent.
    ("DEVICE-0001", even(A, B), B),
    ("device-0001", even("HUB-A.azure-devices.net", "Hub-B.Azure-Devices.net"),
     "Hub-B.Azure-Devices.net"),
]  # fmt: skip


@pytest.mark.parametrize(("key", "candidates", "expected"), GOLDEN, ids=[g[0][:24] for g in GOLDEN])
def test_golden_table(key: str, candidates: list[Candidate], expected: str) -> None:
    assert rendezvous.choose(key, candidates).name == expected


@pytest.mark.parametrize(
    ("hub", "key", "u"),
    [
        (A, "device-0001", 0.33585794914696343),
        (B, "device-0001", 0.5613364899962515),
        (TOASTERS, "breakroom499-contoso-tstrsd-007", 0.12013559754047443),
    ],
)
def test_the_unit_hash_is_pinned_to_the_bit(hub: str, key: str, u: float) -> None:
    assert rendezvous.unit_hash(hub, key.encode()) == u


def test_the_order_of_linked_hubs_does_not_matter() -> None:
    candidates = hubs((A, 1), (B, 3), (C, 6))
    for i in range(2000):
        key = f"device-{i}"
        assert rendezvous.choose(key, candidates) == rendezvous.choose(key, candidates[::-1])


@given(st.text(min_size=1, max_size=200))
def test_any_registration_id_gets_a_hub_even_with_lone_surrogates(key: str) -> None:
    candidates = even(A, B, C)
    assert rendezvous.choose(key, candidates) in candidates


@given(st.binary(max_size=64), st.sampled_from([A, B, C, TOASTERS]))
def test_unit_hash_is_strictly_inside_zero_one(key: bytes, hub: str) -> None:
    assert 0.0 < rendezvous.unit_hash(hub, key) < 1.0


# -- shares and movement over a fleet --------------------------------------------------------

FLEET = [f"sensor-{i:06d}" for i in range(100_000)]


def assign(candidates: list[Candidate]) -> list[str]:
    return [rendezvous.choose(key, candidates).name for key in FLEET]


@pytest.fixture(scope="module")
def base_assignment() -> list[str]:
    return assign(hubs((A, 1), (B, 3), (C, 6)))


def test_weights_1_3_6_give_shares_within_one_point(base_assignment: list[str]) -> None:
    shares = {hub: count / len(FLEET) for hub, count in Counter(base_assignment).items()}
    assert shares == pytest.approx({A: 0.1, B: 0.3, C: 0.6}, abs=0.01)


def moved(before: list[str], after: list[str]) -> list[tuple[str, str]]:
    return [(b, a) for b, a in zip(before, after, strict=True) if b != a]


def test_adding_a_hub_moves_only_its_share_and_only_onto_it(base_assignment: list[str]) -> None:
    D = "hub-d.azure-devices.net"
    after = assign(hubs((A, 1), (B, 3), (C, 6), (D, 2)))
    moves = moved(base_assignment, after)
    minimum = 2 / 12 * len(FLEET)
    assert len(moves) <= 1.05 * minimum
    assert {to for _, to in moves} == {D}


def test_removing_a_hub_moves_only_its_devices(base_assignment: list[str]) -> None:
    after = assign(hubs((A, 1), (C, 6)))
    moves = moved(base_assignment, after)
    minimum = 3 / 10 * len(FLEET)
    assert len(moves) <= 1.05 * minimum
    assert {source for source, _ in moves} == {B}


def test_reweighting_a_hub_moves_devices_only_to_or_from_it(base_assignment: list[str]) -> None:
    after = assign(hubs((A, 4), (B, 3), (C, 6)))
    moves = moved(base_assignment, after)
    minimum = (4 / 13 - 1 / 10) * len(FLEET)
    assert len(moves) <= 1.05 * minimum
    assert {to for _, to in moves} == {A}

    lighter = assign(hubs((A, 1), (B, 3), (C, 2)))
    moves = moved(base_assignment, lighter)
    minimum = (6 / 10 - 2 / 6) * len(FLEET)
    assert len(moves) <= 1.05 * minimum
    assert {source for source, _ in moves} == {C}
