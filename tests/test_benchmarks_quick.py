"""The benchmarks still run: ``python -m benchmarks --quick``, as CI runs it.

Benchmarks are not tests, so nothing here asserts a time: only that every expected figure was
measured and divided by its floor.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

EXPECTED_RATIOS = {
    "in-process.default": "in-process.default.floor",
    "in-process.rules-50": "in-process.rules-50.floor",
    "in-process.latency": "in-process.latency.floor",
    "simulation.simulate": "simulation.bare-loop",
    "simulation.phases": "simulation.first-registrations",
}


def test_quick_run_measures_every_figure_against_its_floor(tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--only",
            "in-process,simulation",
            "--json",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,  # the phases figure adds 22 short simulate processes
        check=False,
    )
    assert done.returncode == 0, done.stderr

    report = json.loads(output.read_text())
    assert report["mode"] == "quick"
    figures = {figure["id"]: figure for figure in report["figures"]}
    for figure_id, floor_id in EXPECTED_RATIOS.items():
        figure, floor = figures[figure_id], figures[floor_id]
        assert figure["skipped"] is None and floor["skipped"] is None
        assert figure["baseline"] == floor_id
        assert figure["runs"] >= 3 and floor["runs"] >= 3
        assert floor["min"] <= floor["median"] <= floor["max"]
        assert figure["ratio"] == figure["median"] / floor["median"]
    targets = {
        figure_id: (figures[figure_id]["target"]["op"], figures[figure_id]["target"]["limit"])
        for figure_id in (
            "in-process.default",
            "in-process.rules-50",
            "simulation.simulate",
            "simulation.phases",
        )
    }
    assert targets == {
        "in-process.default": ("<=", 6.0),
        "in-process.rules-50": ("<=", 15.0),
        "simulation.simulate": ("<=", 4.0),
        "simulation.phases": ("<=", 3.0),
    }
    # Quick runs are too short to judge: targets are shown, not judged.
    assert all(figure["met"] is None for figure in report["figures"])
    assert "| in-process" in done.stdout and "| simulation" in done.stdout


def test_quick_cold_start_measures_the_app_with_and_without_bytecode(tmp_path: Path) -> None:
    output = tmp_path / "cold.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "cold-start",
         "--json", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    figures = {figure["id"]: figure for figure in json.loads(output.read_text())["figures"]}
    children = ["default", "rules-50", "default-no-bytecode", "rules-50-no-bytecode"]
    for child in ["deps-with-a-model", *children]:
        for suffix, floor in [
            ("", "cold-start.baseline"),
            (".peak-rss", "cold-start.baseline.peak-rss"),
        ]:
            figure = figures[f"cold-start.{child}{suffix}"]
            assert figure["skipped"] is None, figure
            assert figure["baseline"] == floor
            assert figure["runs"] >= 3
    # Judged against the 1.25x target: the app as deployments ship it, compiled.
    assert [c for c in children if figures[f"cold-start.{c}"]["target"]] == ["default", "rules-50"]


def test_a_short_soak_of_the_local_host_finds_no_error_and_no_wrong_answer(
    tmp_path: Path,
) -> None:
    output = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--seconds", "2", "--rate", "300",
         "--devices", "200", "--json", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr

    run = json.loads(output.read_text())["soak"]
    assert run["errors"] == []
    assert run["wrong_answers"] == 0
    assert run["requests"] >= 300
    # Every kind of answer the rich policy gives was checked, not only 200s.
    assert {"200", "503"} <= set(run["statuses"])


def test_quick_run_measures_the_lookup_figures_against_azurite(tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "lookups", "--json", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = {figure["id"]: figure for figure in json.loads(output.read_text())["figures"]}
    for figure in ("lookups.warm", "lookups.cold"):
        assert figures[figure]["baseline"] == "lookups.floor"
        assert figures[figure]["ratio"] is not None


def test_a_short_soak_through_an_azurite_restart_gets_no_500_and_no_wrong_answer(
    tmp_path: Path,
) -> None:
    output = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak_lookups", "--seconds", "9", "--rate", "20",
         "--outage", "1", "--devices", "100", "--json", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr

    run = json.loads(output.read_text())
    assert run["errors"] == []
    assert run["wrong_answers"] == 0
    assert run["answers_500"] == 0
    # The outage was seen (503s), and so were rows and refusals around it.
    assert {"200", "403", "503"} <= set(run["statuses"])


def test_quick_rules_scale_measures_each_size_against_50_rules(tmp_path: Path) -> None:
    output = tmp_path / "rules.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "rules-scale",
         "--json", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    figures = {figure["id"]: figure for figure in json.loads(output.read_text())["figures"]}
    for device in ("middle", "last", "none"):
        base = f"rules-scale.{device}.50"
        assert figures[base]["skipped"] is None
        for size in ("500", "5000"):
            figure = figures[f"rules-scale.{device}.{size}"]
            assert figure["baseline"] == base
            assert (figure["target"]["op"], figure["target"]["limit"]) == ("<=", 2.0)
        assert figures[f"rules-scale.{device}.5000-linear"]["baseline"] == base
    for size in (2, 4, 8, 16):
        indexed = figures[f"rules-scale.small.{size}.indexed"]
        assert indexed["baseline"] == f"rules-scale.small.{size}.linear"
    for figure_id, limit in (("rules-scale.load.5000", 1000.0), ("rules-scale.memory.5000", 50.0)):
        target = figures[figure_id]["target"]
        assert (target["on"], target["limit"]) == ("value", limit)
