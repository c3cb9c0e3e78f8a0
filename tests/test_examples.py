"""The worked examples in ``examples/``: what each README promises, checked.

Every sample request of an example goes through the Azure Function with the example's
``policy.json`` deployed as ``ALLOCATION_POLICY_FILE`` (a path from the function app root, as an
operator sets it), and must get exactly the status and JSON body of its
``requests/<name>.expected.json``, which the README quotes verbatim. The movement figures of
the phased migration are measured here, and the README's tables must hold the measured rows.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import runpy
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from allocation.policy import Policy
from allocation.sources import APP_ROOT, POLICY_FILE_SETTING, load_policy, policy_cache
from allocation.webhook import WebhookResponse, handle
from tests.azurite import ACCOUNT, ACCOUNT_KEY, free_port
from tests.conftest import FIXTURES, call_function, encode, load_sample

EXAMPLES = APP_ROOT / "examples"
EXAMPLE_DIRS = sorted(path for path in EXAMPLES.iterdir() if path.is_dir())
TUTORIAL = EXAMPLES / "01-custom-allocation-tutorial"
GEOGRAPHY = EXAMPLES / "02-geography"
MIGRATION = EXAMPLES / "03-phased-migration"
SITES = EXAMPLES / "04-site-affinity"
INVENTORY = EXAMPLES / "05-inventory"
MANY_CUSTOMERS = EXAMPLES / "06-many-customers"

EXPECTED_SUFFIX = ".expected.json"
SAMPLES = sorted(
    path
    for example in EXAMPLE_DIRS
    for path in (example / "requests").glob("*.json")
    if not path.name.endswith(EXPECTED_SUFFIX)
)
POLICY_FILES = sorted(EXAMPLES.glob("*/policy.json")) + sorted(EXAMPLES.glob("*/phases/*.json"))


def expected_answer(sample: Path) -> Path:
    return sample.with_name(sample.stem + EXPECTED_SUFFIX)


def sample_body(example: Path, name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(
        (example / "requests" / f"{name}.json").read_text(encoding="utf-8")
    )
    return body


def device(
    template: dict[str, Any],
    registration_id: str,
    *,
    payload: Any = None,
    current_hub: str | None = None,
) -> dict[str, Any]:
    """The template request (its enrollment and linked hubs) for another device."""
    body = copy.deepcopy(template)
    runtime: dict[str, Any] = {"registrationId": registration_id}
    if current_hub is not None:
        runtime |= {"currentIotHubHostName": current_hub, "currentDeviceId": registration_id}
    runtime["symmetricKey"] = {}
    if payload is not None:
        runtime["payload"] = payload
    body["deviceRuntimeContext"] = runtime
    return body


def from_app_root(path: Path) -> str:
    return path.relative_to(APP_ROOT).as_posix()


def policy_file(path: Path) -> Policy:
    """The policy of a file, read and compiled the way ALLOCATION_POLICY_FILE has it loaded."""
    return load_policy({POLICY_FILE_SETTING: from_app_root(path)}).policy


@pytest.fixture
def deploy(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Deploy a policy file: ALLOCATION_POLICY_FILE, relative to the function app root."""

    def install(path: Path) -> None:
        monkeypatch.setenv(POLICY_FILE_SETTING, from_app_root(path))
        policy_cache.clear()

    return install


def allocate(body: dict[str, Any]) -> WebhookResponse:
    """The core's answer under the deployed policy, with the decision behind it."""
    return handle(encode(body))


# -- every example -------------------------------------------------------------------------------


def inventory_store(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, example: Path, state: str
) -> None:
    """ALLOCATION_STORAGE for an example with a ``devices.csv``: Azurite with the file loaded
    into table ``devices``, or (``"store": "unreachable"`` in the expected answer) a port
    nothing listens on."""
    from allocation.inventory import read_rows
    from allocation.storage.connection import StorageClients, connection_from_settings
    from allocation.storage.tables import upsert_rows

    if state == "unreachable":
        endpoint = f"http://127.0.0.1:{free_port()}/{ACCOUNT}"
        monkeypatch.setenv(
            "ALLOCATION_STORAGE",
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"TableEndpoint={endpoint};",
        )
        return
    connection_string = request.getfixturevalue("azurite").connection_string
    monkeypatch.setenv("ALLOCATION_STORAGE", connection_string)
    clients = StorageClients(connection_from_settings({"ALLOCATION_STORAGE": connection_string}))
    upsert_rows("devices", read_rows(example / "devices.csv"), clients)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_each_sample_request_gets_the_answer_its_readme_quotes(
    sample: Path,
    deploy: Callable[[Path], None],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = json.loads(expected_answer(sample).read_text(encoding="utf-8"))
    example = sample.parent.parent
    if (example / "devices.csv").exists():
        inventory_store(request, monkeypatch, example, expected.get("store", "up"))
    deploy(example / "policy.json")

    response = call_function("allocate", sample.read_bytes())

    assert response.status_code == expected["status"]
    assert json.loads(response.get_body()) == expected["body"]
    for header, value in expected.get("headers", {}).items():
        assert response.headers[header] == value
    # The decision path, as the webhook logs it; only a 200 has one.
    decision = handle(sample.read_bytes()).decision
    assert (decision.path if decision else None) == expected.get("path")


def test_every_expected_answer_belongs_to_a_sample_request() -> None:
    answers = set(EXAMPLES.glob(f"*/requests/*{EXPECTED_SUFFIX}"))
    assert answers == {expected_answer(sample) for sample in SAMPLES}
    assert {sample.parent.parent for sample in SAMPLES} == set(EXAMPLE_DIRS)


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=lambda p: p.name)
def test_the_readme_quotes_the_policy_and_every_answer(example: Path) -> None:
    readme = (example / "README.md").read_text(encoding="utf-8")
    policy = (example / "policy.json").read_text(encoding="utf-8").strip()
    if (example / GENERATOR).exists():
        # Thousands of lines: the README quotes the beginning, down to the first generated rule.
        policy = "\n".join(policy.splitlines()[:16])

    assert policy in readme
    for sample in (example / "requests").glob(f"*{EXPECTED_SUFFIX}"):
        assert sample.read_text(encoding="utf-8").strip() in readme, (
            f"README.md does not quote {sample.name}"
        )


GENERATOR = "generate.py"


@pytest.mark.parametrize(
    "example", [e for e in EXAMPLE_DIRS if (e / GENERATOR).exists()], ids=lambda p: p.name
)
def test_a_generated_example_is_exactly_what_its_script_writes(
    example: Path, tmp_path: Path
) -> None:
    copy_of = tmp_path / example.name
    (copy_of / "requests").mkdir(parents=True)
    shutil.copy(example / GENERATOR, copy_of / GENERATOR)

    runpy.run_path(str(copy_of / GENERATOR), run_name="__main__")

    written = sorted(p.relative_to(copy_of) for p in copy_of.rglob("*.json"))
    committed = sorted(
        p.relative_to(example)
        for p in example.rglob("*.json")
        if not p.name.endswith(EXPECTED_SUFFIX)
    )
    assert written == committed
    for path in written:
        assert (copy_of / path).read_bytes() == (example / path).read_bytes(), path


def test_the_index_links_every_example() -> None:
    index = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for example in EXAMPLE_DIRS:
        assert f"]({example.name}/)" in index


@pytest.mark.parametrize("path", POLICY_FILES, ids=from_app_root)
def test_policy_files_name_the_schema_first_and_load(path: Path) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))

    assert next(iter(document)) == "$schema"
    assert (path.parent / document["$schema"]).resolve() == APP_ROOT / "policy.schema.json"
    policy_file(path)  # loads without a problem


@pytest.mark.parametrize("path", POLICY_FILES, ids=from_app_root)
def test_policy_files_validate_against_the_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = APP_ROOT / "policy.schema.json"
    if not schema.exists():
        pytest.skip("policy.schema.json has not been generated")
    validator = jsonschema.Draft202012Validator(json.loads(schema.read_text(encoding="utf-8")))
    validator.validate(json.loads(path.read_text(encoding="utf-8")))


# -- 01: Microsoft's custom allocation tutorial ---------------------------------------------------


def test_tutorial_answers_the_captured_tutorial_request_as_microsofts_function_did(
    deploy: Callable[[Path], None],
) -> None:
    deploy(TUTORIAL / "policy.json")

    response = call_function(
        "allocate", (FIXTURES / "group-symmetric-key-initial.json").read_bytes()
    )

    assert response.status_code == 200
    assert json.loads(response.get_body()) == load_sample("response-with-initial-twin.json")


@pytest.mark.parametrize(
    "registration_id",
    [
        "lobby12-contoso-cfmkr-301",  # a coffee maker: no rule for it
        "breakroom499-contoso-tstrsd-008",  # another toaster model
        "contoso-tstrsd-007",  # no '-' before the model: not "contains -contoso-tstrsd-007"
    ],
)
def test_tutorial_refuses_any_other_device_with_403_naming_the_rule(
    registration_id: str, deploy: Callable[[Path], None]
) -> None:
    deploy(TUTORIAL / "policy.json")
    body = device(sample_body(TUTORIAL, "toaster"), registration_id)

    response = call_function("allocate", encode(body))

    assert response.status_code == 403
    assert json.loads(response.get_body()) == {
        "error": "denied",
        "message": "denied by otherwise",
        "rule": "otherwise",
    }


# -- 02: geography ----------------------------------------------------------------------------

EU_PAIR = {"contoso-eu-1.azure-devices.net", "contoso-eu-2.azure-devices.net"}
US_PAIR = {"contoso-us-1.azure-devices.net", "contoso-us-2.azure-devices.net"}


def test_geography_measurements_outrank_the_region(deploy: Callable[[Path], None]) -> None:
    deploy(GEOGRAPHY / "policy.json")
    measured = sample_body(GEOGRAPHY, "measured-elsewhere")
    assert measured["deviceRuntimeContext"]["payload"]["region"] == "westeurope"

    response = allocate(measured)

    assert response.body["iotHubHostName"] == "contoso-us-1.azure-devices.net"
    assert response.decision is not None
    assert response.decision.path == "default > latency"
    assert response.decision.steps[-1].evidence["evidence"] == "measurements"

    # Without its measurements the same device goes by its region, to Europe.
    del measured["deviceRuntimeContext"]["payload"]["latencyMs"]
    by_region = allocate(measured)
    assert by_region.body["iotHubHostName"] in EU_PAIR
    assert by_region.decision is not None
    assert by_region.decision.steps[-1].evidence["evidence"] == "region"


@pytest.mark.parametrize(
    ("region", "pair"),
    [
        ("westeurope", EU_PAIR),
        ("northeurope", EU_PAIR),
        ("uksouth", EU_PAIR),
        ("francecentral", EU_PAIR),
        ("germanywestcentral", EU_PAIR),
        ("swedencentral", EU_PAIR),
        ("eastus", US_PAIR),
        ("eastus2", US_PAIR),
        ("canadacentral", US_PAIR),
        ("centralus", US_PAIR),
        ("southcentralus", US_PAIR),
        ("westus2", US_PAIR),
    ],
)
def test_geography_a_device_with_only_a_region_goes_to_the_nearest_pair(
    region: str, pair: set[str], deploy: Callable[[Path], None]
) -> None:
    deploy(GEOGRAPHY / "policy.json")
    template = sample_body(GEOGRAPHY, "region-uk")

    for n in range(20):
        response = allocate(device(template, f"sensor-{region}-{n}", payload={"region": region}))

        assert response.body["iotHubHostName"] in pair
        assert response.decision is not None
        assert response.decision.path == "default > latency"
        assert response.decision.steps[-1].evidence["evidence"] == "region"


@pytest.mark.parametrize(
    "payload",
    [None, {"region": "europe"}, {"firmware": "2.4.1"}, {"region": {"lat": 91, "lon": 0}}],
    ids=["no-payload", "not-an-azure-region", "no-region", "impossible-coordinates"],
)
def test_geography_an_unknown_location_falls_back_to_weighted(
    payload: Any, deploy: Callable[[Path], None]
) -> None:
    deploy(GEOGRAPHY / "policy.json")
    template = sample_body(GEOGRAPHY, "no-location")

    hubs: Counter[str] = Counter()
    for n in range(200):
        response = allocate(device(template, f"sensor-{n:04d}", payload=payload))
        assert response.decision is not None
        assert response.decision.path == "default > fallback > weighted"
        hubs[response.body["iotHubHostName"]] += 1

    # Spread over all four hubs, geography or not.
    assert set(hubs) == EU_PAIR | US_PAIR
    assert min(hubs.values()) > 25


# -- 03: phased migration -------------------------------------------------------------------------

LEGACY = "contoso-legacy-hub.azure-devices.net"
METERS = ("contoso-meters-1.azure-devices.net", "contoso-meters-2.azure-devices.net")
FLEET = [f"meter-{n:05d}" for n in range(10_000)]
PHASES = ("drain-00", "drain-05", "drain-25", "drain-50", "drain-100")
# Registrations per minute the README plans a phase at: half of one DPS unit's 1,000.
RATE = 500


@dataclass(frozen=True)
class Phase:
    name: str
    drain: float
    on_legacy_before: int
    moved: frozenset[str]
    routes: Counter[tuple[str, str]]  # (from, to) of the devices that moved
    hubs_after: Counter[str]
    placed: dict[str, str]  # registration ID -> hub, after the phase


def register_fleet(
    policy: Policy, template: dict[str, Any], hubs: dict[str, str]
) -> dict[str, str]:
    """Every device registers again from its current hub; returns where each one is now."""
    now = {}
    for registration_id, hub in hubs.items():
        response = handle(encode(device(template, registration_id, current_hub=hub)), policy)
        assert response.status == 200, response.body
        now[registration_id] = response.body["iotHubHostName"]
    return now


@pytest.fixture(scope="module")
def migration() -> list[Phase]:
    """The fleet starts on the legacy hub; each phase file is deployed in turn, and every
    device re-registers once per phase (the worst case: devices that need not move do too)."""
    template = sample_body(MIGRATION, "not-drained-yet")
    hubs = dict.fromkeys(FLEET, LEGACY)
    phases = []
    for name in PHASES:
        path = MIGRATION / "phases" / f"{name}.json"
        before = hubs
        hubs = register_fleet(policy_file(path), template, before)
        drain = json.loads(path.read_text(encoding="utf-8"))["hubs"][LEGACY]["drain"]
        moved = frozenset(d for d in FLEET if hubs[d] != before[d])
        phases.append(
            Phase(
                name,
                drain,
                sum(hub == LEGACY for hub in before.values()),
                moved,
                Counter((before[d], hubs[d]) for d in moved),
                Counter(hubs.values()),
                hubs,
            )
        )
    return phases


def test_migration_policy_is_the_25_percent_phase() -> None:
    deployed = json.loads((MIGRATION / "policy.json").read_text(encoding="utf-8"))
    phase = json.loads((MIGRATION / "phases" / "drain-25.json").read_text(encoding="utf-8"))
    assert {**deployed, "$schema": None} == {**phase, "$schema": None}


@pytest.mark.parametrize("name", PHASES)
def test_migration_phases_differ_only_in_the_legacy_hubs_drain(name: str) -> None:
    phase = json.loads((MIGRATION / "phases" / f"{name}.json").read_text(encoding="utf-8"))
    first = json.loads((MIGRATION / "phases" / f"{PHASES[0]}.json").read_text(encoding="utf-8"))
    drain = phase["hubs"][LEGACY].pop("drain")
    first["hubs"][LEGACY].pop("drain")

    assert phase == first
    assert drain == int(name.removeprefix("drain-"))


def test_migration_moves_each_device_once_and_only_off_the_legacy_hub(
    migration: list[Phase],
) -> None:
    moved_before: set[str] = set()
    for phase in migration:
        assert not phase.moved & moved_before, f"{phase.name} moves a device a second time"
        assert {origin for origin, _ in phase.routes} <= {LEGACY}
        assert {target for _, target in phase.routes} <= set(METERS)
        moved_before |= phase.moved
        # Everyone moved so far has left the legacy hub, and nobody else has.
        assert phase.hubs_after[LEGACY] == len(FLEET) - len(moved_before)
        assert len(moved_before) / len(FLEET) == pytest.approx(phase.drain / 100, abs=0.01)
        if phase.moved:  # split evenly over the two new hubs, as their weights say
            onto_first = phase.routes[LEGACY, METERS[0]] / len(phase.moved)
            assert onto_first == pytest.approx(0.5, abs=0.03)

    assert migration[0].moved == frozenset()
    assert migration[-1].hubs_after[LEGACY] == 0
    assert set(migration[-1].hubs_after) == set(METERS)


@pytest.mark.parametrize("name", PHASES)
def test_migration_new_devices_never_land_on_the_legacy_hub(name: str) -> None:
    policy = policy_file(MIGRATION / "phases" / f"{name}.json")
    template = sample_body(MIGRATION, "new-meter")

    hubs = Counter(
        handle(encode(device(template, f"meter-new-{n:04d}")), policy).body["iotHubHostName"]
        for n in range(1000)
    )

    assert set(hubs) == set(METERS)


def readme_snippet(example: Path) -> dict[str, Any]:
    """Run the README's Python block; returns what it defines."""
    readme = (example / "README.md").read_text(encoding="utf-8")
    match = re.search(r"```python\n(.*?)```", readme, re.DOTALL)
    assert match is not None, "README.md has no Python block"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), f"{example.name}/README.md", "exec"), namespace)
    return namespace


def test_migration_readme_lists_exactly_the_devices_a_phase_moves(
    migration: list[Phase],
) -> None:
    moves_in_phase = readme_snippet(MIGRATION)["moves_in_phase"]
    for previous, phase in itertools.pairwise(migration):
        listed = {d for d in FLEET if moves_in_phase(d, previous.drain, phase.drain)}
        assert listed == phase.moved, phase.name


def movement_rows(phases: Sequence[Phase]) -> list[str]:
    rows = []
    moved = 0
    for phase in phases:
        moved += len(phase.moved)
        counts = [f"{phase.hubs_after[hub]:,}" for hub in (LEGACY, *METERS)]
        rows.append(
            f"| `phases/{phase.name}.json` | {phase.drain:g} % | {len(phase.moved):,} "
            f"| {moved:,} | {' | '.join(counts)} |"
        )
    return rows


def cost_rows(phases: Sequence[Phase]) -> list[str]:
    rows = []
    for phase in phases:
        movers, everyone = len(phase.moved), phase.on_legacy_before
        rows.append(
            f"| `phases/{phase.name}.json` | {movers:,} | {movers / RATE:.1f} min "
            f"| {movers * 100 / RATE / 60:.1f} h | {everyone:,} | {everyone / RATE:.1f} min |"
        )
    return rows


def test_migration_sample_meters_move_in_the_phases_the_readme_says(
    migration: list[Phase],
) -> None:
    by_name = {phase.name: phase for phase in migration}
    assert "meter-00008" in by_name["drain-05"].moved
    assert by_name["drain-05"].placed["meter-00008"] == "contoso-meters-2.azure-devices.net"
    assert "meter-00005" in by_name["drain-25"].moved
    assert by_name["drain-25"].placed["meter-00005"] == "contoso-meters-1.azure-devices.net"
    assert "meter-00000" in by_name["drain-100"].moved


def test_migration_readme_tables_hold_the_measured_figures(migration: list[Phase]) -> None:
    readme = (MIGRATION / "README.md").read_text(encoding="utf-8")
    for row in movement_rows(migration) + cost_rows(migration[1:]):
        assert row in readme.splitlines(), f"README.md lacks the measured row\n{row}"
    everyone = sum(phase.on_legacy_before for phase in migration[1:])
    assert f"costs {everyone:,} for this fleet" in readme


def test_migration_without_the_policy_linking_new_hubs_would_move_most_of_the_fleet() -> None:
    # The built-in policy (no ALLOCATION_POLICY*): evenly weighted over the three linked hubs.
    template = sample_body(MIGRATION, "not-drained-yet")
    before = dict.fromkeys(FLEET, LEGACY)
    after = register_fleet(load_policy({}).policy, template, before)
    moved = sum(after[d] != LEGACY for d in FLEET)

    assert moved / len(FLEET) == pytest.approx(2 / 3, abs=0.02)
    assert f"{moved:,} of the 10,000" in (MIGRATION / "README.md").read_text(encoding="utf-8")


# -- 04: site affinity ---------------------------------------------------------------------------

SITE_HUBS = {f"contoso-sites-{n}.azure-devices.net" for n in (1, 2, 3)}
EDGE = "contoso-edge.azure-devices.net"


def allocate_sites(
    sites: int, devices_per_site: int, also_linked: Sequence[str] = ()
) -> tuple[dict[str, set[str]], set[str]]:
    """Device 0 of each site is its IoT Edge gateway. Returns the hubs of each site's other
    devices, and the hubs of the gateways."""
    leaf = sample_body(SITES, "berlin-thermostat")
    gateway = sample_body(SITES, "berlin-gateway")
    for template in (leaf, gateway):
        template["linkedHubs"].extend(also_linked)
        template["enrollmentGroup"]["iotHubs"].extend(also_linked)
    site_hubs: dict[str, set[str]] = defaultdict(set)
    gateway_hubs: set[str] = set()
    for site in range(sites):
        site_id = f"site-{site:02d}"
        for n in range(devices_per_site):
            template = gateway if n == 0 else leaf
            body = device(template, f"{site_id}-device-{n:02d}", payload={"siteId": site_id})
            response = call_function("allocate", encode(body))
            assert response.status_code == 200
            hub = json.loads(response.get_body())["iotHubHostName"]
            (gateway_hubs if n == 0 else site_hubs[site_id]).add(hub)
    return site_hubs, gateway_hubs


def test_site_affinity_puts_each_site_on_one_hub_and_gateways_on_the_edge_hub(
    deploy: Callable[[Path], None],
) -> None:
    deploy(SITES / "policy.json")

    site_hubs, gateway_hubs = allocate_sites(20, 10)  # 200 devices, 20 of them gateways

    assert len(site_hubs) == 20
    assert all(len(hubs) == 1 for hubs in site_hubs.values())
    used = set().union(*site_hubs.values())
    assert used <= SITE_HUBS
    assert len(used) > 1  # sites spread over the site hubs
    assert gateway_hubs == {EDGE}


def test_site_affinity_a_new_site_hub_takes_whole_sites_and_only_they_move(
    use_policy: Callable[[Any], None],
) -> None:
    policy = json.loads((SITES / "policy.json").read_text(encoding="utf-8"))
    use_policy(policy)
    before, _ = allocate_sites(60, 3)

    new_hub = "contoso-sites-4.azure-devices.net"
    policy["hubs"][new_hub] = {"tags": ["sites"]}
    use_policy(policy)
    after, gateways = allocate_sites(60, 3, also_linked=[new_hub])

    assert all(len(hubs) == 1 for hubs in after.values())
    moved = {site for site in before if after[site] != before[site]}
    assert all(after[site] == {new_hub} for site in moved)
    assert len(moved) / len(before) == pytest.approx(1 / 4, abs=0.1)
    assert gateways == {EDGE}


def test_site_affinity_variant_for_transparent_gateways_puts_each_gateway_with_its_site(
    use_policy: Callable[[Any], None],
) -> None:
    # The README's variant: the gateway rule allocates like `otherwise`, keeping its role tag.
    policy = json.loads((SITES / "policy.json").read_text(encoding="utf-8"))
    allocation = policy["default"]
    allocation["rules"][0]["then"] = {
        **allocation["otherwise"],
        "initialTwin": allocation["rules"][0]["then"]["initialTwin"],
    }
    use_policy(policy)

    leaf = sample_body(SITES, "berlin-thermostat")
    gateway = sample_body(SITES, "berlin-gateway")
    for site in range(20):
        site_id = f"site-{site:02d}"
        hubs = set()
        for n, template in enumerate([gateway, leaf, leaf]):
            body = device(template, f"{site_id}-device-{n:02d}", payload={"siteId": site_id})
            answer = json.loads(call_function("allocate", encode(body)).get_body())
            hubs.add(answer["iotHubHostName"])
            if template is gateway:
                assert answer["initialTwin"]["tags"] == {"siteId": site_id, "role": "gateway"}
        assert len(hubs) == 1
        assert hubs <= SITE_HUBS


# -- 05: device inventory ----------------------------------------------------------------------


def test_inventory_every_listed_meter_lands_where_its_row_says(
    deploy: Callable[[Path], None],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from allocation.inventory import read_rows

    inventory_store(request, monkeypatch, INVENTORY, "up")
    deploy(INVENTORY / "policy.json")
    template = sample_body(INVENTORY, "contoso-meter")
    shared = {"shared-1.azure-devices.net", "shared-2.azure-devices.net"}

    for row in read_rows(INVENTORY / "devices.csv"):
        answer = allocate(device(template, row.row_key))
        assert answer.status == 200
        hub = answer.body["iotHubHostName"]
        assert hub == row.properties["hub"] if "hub" in row.properties else hub in shared
        assert answer.body["initialTwin"] == {"tags": {"customer": row.properties["customer"]}}


def test_inventory_readme_explain_command_answers_offline_from_the_csv() -> None:
    from tests.conftest import run_cli

    result = run_cli(
        "explain", "examples/05-inventory/requests/contoso-meter.json",
        "--policy", "examples/05-inventory/policy.json",
        "--lookup", "inventory=examples/05-inventory/devices.csv",
        env={"ALLOCATION_STORAGE": ""},
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "lookup       inventory: hit (from the file)" in result.stdout
    assert "-> contoso-dedicated.azure-devices.net" in result.stdout
