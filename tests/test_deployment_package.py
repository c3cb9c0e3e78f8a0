"""The deployment package, built as a remote build builds it, answers like the source tree.

azd (and `func azure functionapp publish`) upload the project's files minus ``.funcignore``;
Flex Consumption's remote build installs ``requirements.txt`` and nothing else. So the package
here is the tracked files less ``.funcignore``'s patterns, in a new virtual environment with only
``requirements.txt`` installed. A module that imports a dev-only package, or a file the app reads
that ``.funcignore`` drops, fails here rather than in Azure.

Slow (a virtual environment and a pip install, from pip's cache when it has the wheels): one
package, built once for the module.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from tests.conftest import FIXTURES, ROOT, call_function

GEOGRAPHY = ROOT / "examples" / "02-geography"

# Runs inside the package's own interpreter: the real azure.functions objects, as the host
# calls them, for each (policy file, request file) given as arguments.
ANSWER = """
import json, sys
import azure.functions as func
import function_app

functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
answers = []
for request_file in sys.argv[1:]:
    request = func.HttpRequest(
        method="POST", url="https://package.azurewebsites.net/api/allocate",
        headers={"Content-Type": "application/json"}, params={},
        body=open(request_file, "rb").read(),
    )
    response = functions["allocate"].get_user_function()(request)
    answers.append({"status": response.status_code, "body": json.loads(response.get_body())})
probe = func.HttpRequest(method="GET", url="https://package.azurewebsites.net/api/health",
                         headers={}, params={}, body=b"")
health = functions["health"].get_user_function()(probe)
print(json.dumps({"answers": answers, "health": health.status_code,
                  "packages": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def funcignore_patterns() -> list[str]:
    lines = (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    # Negations would need gitignore's full rules; this reader refuses them rather than guess.
    assert not any(p.startswith("!") for p in patterns)
    return patterns


def ignored(path: str, patterns: list[str]) -> bool:
    """gitignore's rules for the patterns .funcignore uses: a pattern without a slash matches
    any part of the path; with one, the path from the root (and everything under it)."""
    parts = PurePosixPath(path).parts
    for pattern in patterns:
        bare = pattern.rstrip("/")
        if "/" in bare.lstrip("/"):
            anchored = bare.lstrip("/")
            if any(
                fnmatch.fnmatchcase("/".join(parts[:i]), anchored) for i in range(1, len(parts) + 1)
            ):
                return True
        elif any(fnmatch.fnmatchcase(part, bare.lstrip("/")) for part in parts):
            return True
    return False


def package_files() -> list[str]:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    patterns = funcignore_patterns()
    return [path for path in tracked.split("\0") if path and not ignored(path, patterns)]


def test_funcignore_keeps_the_app_and_drops_what_azure_never_runs() -> None:
    files = set(package_files())
    assert {"function_app.py", "host.json", "requirements.txt"} <= files
    assert "allocation/data/azure_regions.json" in files
    assert not any(f.startswith(("tests/", "infra/", "benchmarks/", "device/")) for f in files)
    assert "requirements-dev.txt" not in files
    assert "azure.yaml" not in files


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("package")
    app = root / "wwwroot"
    for name in package_files():
        target = app / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    environment = root / "venv"
    venv.create(environment, with_pip=True)
    python = environment / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(app / "requirements.txt"),
        ],
        check=True,
        timeout=900,
    )
    yield app, python


def answer_from_package(package: tuple[Path, Path], *requests: Path, **settings: str) -> Any:
    app, python = package
    # Nothing of this machine's environment: no PYTHONPATH, no policy setting, no user site.
    env = {"PATH": os.environ["PATH"], "HOME": str(app.parent), **settings}
    if os.name == "nt":
        env["SYSTEMROOT"] = os.environ["SYSTEMROOT"]
    done = subprocess.run(
        [str(python), "-s", "-c", ANSWER, *map(str, requests)],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_package_answers_a_request_as_the_source_tree_does(
    package: tuple[Path, Path],
) -> None:
    sample = FIXTURES / "group-symmetric-key-initial.json"
    expected = call_function("allocate", sample.read_bytes())

    answered = answer_from_package(package, sample)

    assert answered["answers"] == [
        {"status": expected.status_code, "body": json.loads(expected.get_body())}
    ]
    assert answered["health"] == 200
    dev_only = {"pytest", "hypothesis", "jsonschema", "schemathesis", "uvicorn", "pycep"}
    assert not dev_only & set(answered["packages"])


def test_the_package_reads_the_files_a_policy_needs(package: tuple[Path, Path]) -> None:
    # The geography example reads allocation/data/azure_regions.json and its own policy file.
    request = GEOGRAPHY / "requests" / "region-uk.json"
    expected = json.loads((GEOGRAPHY / "requests" / "region-uk.expected.json").read_text())

    answered = answer_from_package(
        package, request, ALLOCATION_POLICY_FILE="examples/02-geography/policy.json"
    )

    assert answered["answers"] == [{"status": expected["status"], "body": expected["body"]}]


def test_the_package_was_built_for_a_python_the_template_deploys() -> None:
    from tests.test_infra import parse_bicep

    parameter = parse_bicep(ROOT / "infra" / "main.bicep")["parameters"]["pythonVersion"]
    (allowed,) = [d["argument"] for d in parameter["decorators"] if d["type"] == "allowed"]
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in allowed
