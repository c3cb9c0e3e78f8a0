"""The project as a user installs it: `pip install -e .` and the `dps-allocation` console script.

The function app is deployed from requirements.txt; pyproject.toml's [project] must say the same,
or `pip install -e .` would give the operator's tools other versions than the Function runs.
"""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.conftest import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before Python 3.11
    import tomli as tomllib

EXAMPLE = ROOT / "examples" / "01-custom-allocation-tutorial" / "policy.json"


def requirement_lines(name: str) -> list[str]:
    """The requirements a requirements file names itself (not those it includes with -r)."""
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    return [
        re.sub(r"\s+", "", line)
        for line in (raw.partition("#")[0].strip() for raw in lines)
        if line and not line.startswith("-")
    ]


def project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        table: dict[str, object] = tomllib.load(file)["project"]
    return table


def test_the_project_dependencies_are_the_function_apps_requirements() -> None:
    assert project()["dependencies"] == requirement_lines("requirements.txt")


def test_the_local_extra_is_the_local_hosts_requirements() -> None:
    extras = project()["optional-dependencies"]
    assert isinstance(extras, dict)
    assert extras["local"] == requirement_lines("requirements-local.txt")


def bare_environment(directory: Path) -> Path:
    """A new virtual environment with nothing installed in it; its python."""
    venv.create(directory, with_pip=False, symlinks=True)
    return directory / "bin" / "python"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with the project installed as the README says (`pip install -e
    .`), its dependencies taken from the test run's environment rather than downloaded again."""
    directory = tmp_path_factory.mktemp("installed")
    python = bare_environment(directory)
    site_packages = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site_packages) / "test-run-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    pip = [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    result = subprocess.run(
        [*pip, "-e", ROOT], capture_output=True, text=True, check=False, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return directory / "bin"


def test_the_console_script_validates_a_policy_from_any_directory(
    installed: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [installed / "dps-allocation", "validate", str(EXAMPLE)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "ALLOCATION_POLICY": "", "ALLOCATION_POLICY_FILE": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("policy ok: ")
    assert result.stderr == ""


def test_the_console_script_names_itself_in_its_help(installed: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [installed / "dps-allocation", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: dps-allocation ")


def test_a_python_without_the_dependencies_gets_one_line_saying_what_to_install(
    tmp_path: Path,
) -> None:
    python = bare_environment(tmp_path / "bare")

    result = subprocess.run(
        [python, "-m", "allocation", "validate", str(EXAMPLE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: the module '")
    assert "is not installed for" in result.stderr
    assert f"python -m pip install -r {ROOT / 'requirements-local.txt'}" in result.stderr
