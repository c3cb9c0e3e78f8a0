from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from device_doubles import HUB_EU, REGISTRATION_ID

from device.__main__ import main, run
from device.boot import Device
from device.cache import AssignmentCache
from device.clock import FakeClock
from device.fake_transport import FakeSession, FakeTransport, assign_to

REPOSITORY = Path(__file__).resolve().parents[2]
ARGUMENTS = ["--id-scope", "0ne00000A0A", "--registration-id", "dev-1", "--symmetric-key", "a2V5"]


def test_help_works_without_azure_iot_device() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "device", "--help"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0
    for option in ("--id-scope", "--registration-id", "--symmetric-key", "--region"):
        assert option in completed.stdout


def test_a_missing_sdk_is_reported_with_exit_status_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "azure.iot.device", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "device.azure_transport", raising=False)

    assert main(ARGUMENTS) == 2

    error = capsys.readouterr().err
    assert "azure-iot-device" in error
    assert "requirements-device.txt" in error


def test_the_key_is_required_unless_the_environment_holds_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DPS_SYMMETRIC_KEY", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(ARGUMENTS[:4])
    assert exit_.value.code == 2
    assert "DPS_SYMMETRIC_KEY" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("payload", "message"), [("[1, 2]", "must be a JSON object"), ("{modelId", "not JSON")]
)
def test_the_payload_option_must_be_a_json_object(
    capsys: pytest.CaptureFixture[str], payload: str, message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*ARGUMENTS, "--payload", payload])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.fixture
def device(tmp_path: Path) -> Device:
    transport = FakeTransport(REGISTRATION_ID, FakeClock(), assign_to(HUB_EU, {"hubs": [HUB_EU]}))
    cache = AssignmentCache(tmp_path / "assignment.json", REGISTRATION_ID)
    return Device(transport, cache, clock=FakeClock())


def test_run_once_prints_the_assignment_and_disconnects(
    device: Device, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(device, reprovision=False, once=True) == 0

    printed = json.loads(capsys.readouterr().out)
    assert printed == {
        "assignedHub": HUB_EU,
        "deviceId": REGISTRATION_ID,
        "payload": {"hubs": [HUB_EU]},
    }
    assert isinstance(device.session, FakeSession)
    assert device.session.closed


class OneRequestThenCtrlC:
    """Stands in for the device's event: one reprovision request arrives, then Ctrl-C."""

    def __init__(self) -> None:
        self.waits = 0

    def wait(self) -> bool:
        self.waits += 1
        if self.waits > 1:
            raise KeyboardInterrupt
        return True

    def clear(self) -> None:
        pass


def test_run_reprovisions_on_request_until_interrupted(
    device: Device, capsys: pytest.CaptureFixture[str]
) -> None:
    device.reprovision_requested = OneRequestThenCtrlC()  # type: ignore[assignment]
    assert isinstance(device.transport, FakeTransport)

    assert run(device, reprovision=False, once=False) == 0

    assert len(capsys.readouterr().out.splitlines()) == 2  # the boot, then the reprovisioning
    assert len(device.transport.registrations) == 2
    assert [s.closed for s in device.transport.sessions] == [True, True]
