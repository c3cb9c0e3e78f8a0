"""atheris (libFuzzer for Python) over raw request bodies.

    python fuzz/atheris_bytes.py -runs=1000000 [libFuzzer flags] [CORPUS_DIR ...]

Every input is answered by ``allocation.webhook.handle`` under each fuzzing policy
(fuzz.policies) with the invariants of fuzz/invariants.py checked here, in the harness: a
violation raises, libFuzzer stops and saves the input as ``crash-<sha1>`` (see
``-artifact_prefix``). The allocation package is instrumented, so coverage guides the mutations;
instrumented code is slower, so a call over INSTRUMENTED_SLOWDOWN times its budget (twice
json.loads of the body plus a fixed allowance, fuzz/invariants.py) is timed again,
uninstrumented, by fuzz.timer, and that time decides.

Defaults, each overridden by passing the flag: ``-max_len=100000`` (past the 96 KiB limit, so
413s are reachable), ``-timeout=10``, ``-dict=fuzz/dps.dict`` (the contract's names and the
spec's edge values). The seeds, tests/fixtures and fuzz.bodies.seed_bodies() (nesting, size
and key-count limits, NaN, unicode, ...), are written to the first corpus directory, a fresh
temporary one when none is given. Given files rather than directories (``crash-<sha1>``), it
replays them. A progress line every 100,000 inputs and, once ``-runs`` inputs are done, one
JSON line with the counts: inputs, answers by status for each policy, the slowest answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import tempfile
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the repository root holds the packages
    sys.path.insert(0, str(ROOT))

# The modules that read raw bytes loop over every byte (the nesting check, key counting):
# instrumented, a 96 KiB body takes a second. Their branches are few; the decision's are many.
UNINSTRUMENTED = ["allocation.webhook", "allocation.requests"]

with atheris.instrument_imports(include=["allocation"], exclude=UNINSTRUMENTED):
    # fuzz.policies compiles the rich policy, which imports the strategies it names: inside
    # this block, so they are instrumented too.
    import allocation.webhook
    from fuzz.policies import POLICIES

from fuzz.bodies import seed_bodies  # noqa: E402
from fuzz.invariants import (  # noqa: E402
    InvariantViolation,
    Tally,
    budget_for,
    check_answer,
    show,
    timed,
)
from fuzz.timer import UninstrumentedTimer  # noqa: E402

PROGRESS_EVERY = 100_000
DEFAULT_FLAGS = {
    "-max_len": "100000",
    "-timeout": "10",
    "-dict": str(Path(__file__).resolve().with_name("dps.dict")),
}

# How much slower the instrumented code may run before a call is timed again uninstrumented.
INSTRUMENTED_SLOWDOWN = 10

TALLIES = {name: Tally() for name in POLICIES}
TIMER = UninstrumentedTimer()
# Per policy: the input that took the largest share of its budget in process (instrumented),
# and of the inputs timed uninstrumented, the slowest time and the largest share of a budget.
_slowest: dict[str, tuple[float, bytes]] = dict.fromkeys(POLICIES, (0.0, b""))
_uninstrumented: dict[str, float] = dict.fromkeys(POLICIES, 0.0)
_uninstrumented_share: dict[str, float] = dict.fromkeys(POLICIES, 0.0)


def _time_uninstrumented(name: str, data: bytes) -> float:
    """The uninstrumented time over its budget, recorded."""
    seconds, budget = TIMER.measure(name, data)
    _uninstrumented[name] = max(_uninstrumented[name], seconds)
    share = seconds / budget
    _uninstrumented_share[name] = max(_uninstrumented_share[name], share)
    return share


_inputs = 0
_target = 0


def summary() -> str:
    for name, (_, body) in _slowest.items():
        _time_uninstrumented(name, body)
    policies = {}
    for name, tally in TALLIES.items():
        counts = tally.summary()
        counts["max_ms_instrumented"] = counts.pop("max_ms")
        counts["max_budget_share_instrumented"] = counts.pop("max_budget_share")
        counts["max_ms_uninstrumented"] = round(_uninstrumented[name] * 1000, 3)
        counts["max_budget_share_uninstrumented"] = round(_uninstrumented_share[name], 3)
        del counts["over_budget_then_retried"], counts["max_ms_first_try"]
        policies[name] = counts
    return json.dumps({"inputs": _inputs, "policies": policies}, separators=(",", ":"))


def test_one_input(data: bytes) -> None:
    global _inputs  # noqa: PLW0603  (libFuzzer calls a plain function)
    budget = budget_for(data)
    for name, policy in POLICIES.items():
        response, seconds = timed(data, policy)
        TALLIES[name].record(response.status, seconds, len(data), budget=budget)
        check_answer(data, response)
        if seconds / budget > _slowest[name][0]:
            _slowest[name] = (seconds / budget, data)
        if seconds > INSTRUMENTED_SLOWDOWN * budget:
            share = _time_uninstrumented(name, data)
            if share > 1:
                raise InvariantViolation(
                    f"policy {name}: answered in {share:.2f} times its budget uninstrumented "
                    f"(best of several)\n  body: {show(data)}"
                )
    _inputs += 1
    if _inputs % PROGRESS_EVERY == 0:
        print(f"fuzz: {summary()}", file=sys.stderr, flush=True)
    if _inputs == _target:
        print(f"fuzz summary: {summary()}", file=sys.stderr, flush=True)


def write_seeds(directory: Path) -> None:
    for name, body in seed_bodies().items():
        digest = hashlib.sha1(body).hexdigest()[:12]
        (directory / f"seed-{name}-{digest}").write_bytes(body)


def arguments(argv: list[str]) -> list[str]:
    """libFuzzer's arguments: the defaults added, and the seed corpus."""
    global _target  # noqa: PLW0603
    flags = [a for a in argv[1:] if a.startswith("-")]
    corpora = [a for a in argv[1:] if not a.startswith("-")]
    given = {flag.split("=", 1)[0] for flag in flags}
    flags += [f"{name}={value}" for name, value in DEFAULT_FLAGS.items() if name not in given]
    for flag in flags:
        if flag.startswith("-runs="):
            _target = int(flag.split("=", 1)[1])
    if corpora and all(Path(path).is_file() for path in corpora):
        return [argv[0], *flags, *corpora]  # replaying inputs, e.g. a crash-<sha1>
    if not corpora:
        corpora = [tempfile.mkdtemp(prefix="dps-fuzz-corpus-")]
    write_seeds(Path(corpora[0]))  # libFuzzer reads the corpus, and adds to its first directory
    return [argv[0], *flags, *corpora]


def main() -> None:
    # Refusals are logged at WARNING; only a defect's traceback (ERROR) is worth printing.
    logging.getLogger("allocation").setLevel(logging.ERROR)
    for body in seed_bodies().values():  # warm-up: first imports, the policies' caches
        for policy in POLICIES.values():
            allocation.webhook.handle(body, policy)
    atheris.Setup(arguments(sys.argv), test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
