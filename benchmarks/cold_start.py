"""2. Cold start: a fresh interpreter that imports ``function_app`` and answers its first request.

Each figure is the wall time of a whole child process (``time.perf_counter`` around spawn to
exit), so interpreter start-up is in both the figure and its baseline. The child imports
``function_app``, indexes its functions as the Functions host does, and answers one allocation
request (the policy loads on that first request: it is never loaded at import). The child fails
if that imported an Azure storage SDK (azure.storage, azure.data, azure.identity, azure.core),
which only a storage setting may load. Peak memory is the child's own high-water mark
(``VmHWM``, which the child prints as it ends; Linux only).

Baseline: a fresh interpreter that only imports ``azure.functions``, ``pydantic`` and ``mmh3``,
the dependencies every Python implementation of this webhook loads. Both children configure
logging at INFO into a discarding stream, as the worker would.

Bytecode: pip compiled the dependencies when it installed them, so the baseline never compiles
Python source. The app is judged the same way, as the README's deployment ships it: compiled
with ``compileall --invalidation-mode checked-hash`` (valid whatever the file times in the
package), in the setup step below. The same figures are also measured from a copy of the app
without bytecode, as a package that leaves it out runs on a read-only file system, compiling
every module on every cold start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from benchmarks import bodies
from benchmarks.report import Figure, Target

GROUP = "cold-start"

_LOGGING = (
    "import logging, os\nlogging.basicConfig(level=logging.INFO, stream=open(os.devnull, 'w'))"
)

# The child's peak RSS, printed last. Not ru_maxrss: Linux carries the parent's peak across
# fork and exec into it, so a child of a large benchmark process would report the parent's size.
# VmHWM is the peak of the child's own address space.
_PEAK = """
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
"""

BASELINE_CHILD = _LOGGING + "\nimport azure.functions, pydantic, mmh3\n" + _PEAK

# Not a floor, for reading the figures: ``import pydantic`` is lazy (pydantic 2), and the model
# machinery (pydantic.main, its schema generation) loads with the first model class defined.
# A webhook validating with pydantic models pays this; ours validates with pydantic-core
# schemas (allocation.shapes) and does not.
MODELS_CHILD = (
    _LOGGING
    + """
import azure.functions, pydantic, mmh3
from pydantic import BaseModel
class Probe(BaseModel):
    registration_id: str
"""
    + _PEAK
)

FUNCTION_CHILD = (
    _LOGGING
    + """
import azure.functions as func
from function_app import app
functions = {{f.get_function_name(): f for f in app.get_functions()}}
request = func.HttpRequest(
    method="POST", url="https://bench.azurewebsites.net/api/allocate", body={body!r},
    headers={{"Content-Type": "application/json"}}, params={{}},
)
response = functions["allocate"].get_user_function()(request)
if response.status_code != 200:
    raise SystemExit(f"answered {{response.status_code}}: {{response.get_body()!r}}")
# Neither policy here uses storage: its SDKs must not load (they cost the cold start seconds).
import sys
storage = sorted(m for m in sys.modules if m.startswith(("azure.storage", "azure.data",
                                                         "azure.identity", "azure.core")))
if storage:
    raise SystemExit(f"a storage SDK was imported: {{storage[:5]}}")
"""
    + _PEAK.replace("{", "{{").replace("}", "}}")
)


@dataclass(frozen=True)
class Child:
    id: str
    label: str
    script: str
    policy: Path | None  # ALLOCATION_POLICY_FILE for the child; None: the built-in policy
    target: bool = True  # judged against the baseline
    root: Path = bodies.ROOT  # the function app root the child runs in


BASELINE = "baseline"
MODELS = "deps-with-a-model"


# The function app's Python source (a deployment also holds host.json and requirements.txt).
APP: Final = ("function_app.py", "allocation")


def compile_app(root: Path) -> None:
    """Bytecode for the app, as the README's deployment step makes it."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "checked-hash",
            *(str(root / name) for name in APP),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


@contextmanager
def app_without_bytecode() -> Iterator[Path]:
    """A copy of the app with no bytecode, which its children may not write either."""
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        root = Path(tmp)
        for name in APP:
            source = bodies.ROOT / name
            if source.is_dir():
                shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, root / name)
        yield root


def children(bare: Path) -> list[Child]:
    """``bare``: the root of a copy of the app without bytecode."""
    return [
        Child(BASELINE, "import azure.functions, pydantic, mmh3", BASELINE_CHILD, None, False),
        Child(
            MODELS,
            "the same + one pydantic model (loads pydantic's model machinery)",
            MODELS_CHILD,
            None,
            False,
        ),
        Child(
            "default",
            "function_app + first request, default policy",
            FUNCTION_CHILD.format(body=bodies.default_body()),
            None,
        ),
        Child(
            "rules-50",
            "function_app + first request, 50-rule policy file",
            FUNCTION_CHILD.format(body=bodies.rules_body()),
            bodies.POLICIES / "rules-50.json",
        ),
        Child(
            "default-no-bytecode",
            "the same, default policy, app shipped without bytecode",
            FUNCTION_CHILD.format(body=bodies.default_body()),
            None,
            target=False,
            root=bare,
        ),
        Child(
            "rules-50-no-bytecode",
            "the same, 50-rule policy file, app shipped without bytecode",
            FUNCTION_CHILD.format(body=bodies.rules_body()),
            bodies.POLICIES / "rules-50.json",
            target=False,
            root=bare,
        ),
    ]


def spawn(child: Child) -> tuple[float, float]:
    """Seconds from spawn to exit, and peak RSS in MiB, of one fresh interpreter."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ALLOCATION_POLICY", "ALLOCATION_STORAGE")) and k != "PYTHONPATH"
    }
    # A read-only deployment cannot write bytecode; nor may a child (the copy stays bare).
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if child.policy is not None:
        env["ALLOCATION_POLICY_FILE"] = str(child.policy)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", child.script],
        cwd=child.root,  # the function app root, as the Functions host runs it
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    output, errors = process.communicate(timeout=60)
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        message = errors.decode(errors="replace").strip()[-2000:]
        raise RuntimeError(f"cold start child {child.id} failed: {message}")
    return elapsed, int(output.split()[-1]) / 1024  # VmHWM is in kB


def run(quick: bool) -> list[Figure]:
    compile_app(bodies.ROOT)
    with app_without_bytecode() as bare:
        return _measure(children(bare), runs=3 if quick else 15)


def _measure(kids: list[Child], runs: int) -> list[Figure]:
    for child in kids:  # warm-up: files in the page cache
        spawn(child)
    times: dict[str, list[float]] = {c.id: [] for c in kids}
    memory: dict[str, list[float]] = {c.id: [] for c in kids}
    for _ in range(runs):
        for child in kids:  # taking turns, so drift hits every figure alike
            seconds, mib = spawn(child)
            times[child.id].append(seconds * 1000)
            memory[child.id].append(mib)
    figures = []
    for child in kids:
        is_base = child.id == BASELINE
        figures.append(
            Figure(
                GROUP,
                f"{GROUP}.{child.id}",
                child.label,
                "ms",
                times[child.id],
                baseline=None if is_base else f"{GROUP}.{BASELINE}",
                target=Target(1.25) if child.target else None,
            )
        )
    for child in kids:
        is_base = child.id == BASELINE
        figures.append(
            Figure(
                GROUP,
                f"{GROUP}.{child.id}.peak-rss",
                f"peak RSS: {child.label}",
                "MiB",
                memory[child.id],
                baseline=None if is_base else f"{GROUP}.{BASELINE}.peak-rss",
            )
        )
    return figures
