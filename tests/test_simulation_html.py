"""``simulate --html``: the page, opened in a real browser (Debian's headless chromium).

The browser's traffic goes through a proxy of our own that records every connection: a page
that fetched anything (a script, a font, an image) would show up there. The DOM the browser
built is then read back, and its bars and heat-map cells must carry the JSON report's counts.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, run_cli

EXAMPLE = ROOT / "examples" / "03-phased-migration"
HUBS = [
    "contoso-legacy-hub.azure-devices.net",
    "contoso-meters-1.azure-devices.net",
    "contoso-meters-2.azure-devices.net",
]
CHROMIUM = shutil.which("chromium") or "chromium"
# What Chromium asks of its own vendor's services in the background (network time, component
# and extension updates, sign-in), whatever page it shows, despite the flags that disable most.
BROWSER_OWN = re.compile(
    r"^(GET|POST|CONNECT) (http://)?(clients2\.google\.com|update\.googleapis\.com"
    r"|accounts\.google\.com)[:/]"
)


class Proxy:
    """A listening socket that records the first line of each request made to it, and answers
    none."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.requests: list[str] = []
        self.server.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            client.settimeout(2)
            try:
                self.requests.append(client.recv(4096).split(b"\r\n", 1)[0].decode("latin-1"))
            except OSError:
                self.requests.append("(nothing read)")
            client.close()

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.server.close()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    server = Proxy()
    yield server
    server.close()


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))

    def having(self, css_class: str) -> list[dict[str, str | None]]:
        return [a for _, a in self.found if css_class in (a.get("class") or "").split()]


def page_requests(proxy: Proxy) -> list[str]:
    return [line for line in proxy.requests if not BROWSER_OWN.match(line)]


def chromium(
    page: Path, profile: Path, proxy: Proxy, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
            f"--proxy-server=http://127.0.0.1:{proxy.port}", "--proxy-bypass-list=<-loopback>",
            "--window-size=1150,1900", "--hide-scrollbars", *extra, page.as_uri(),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_page_shows_the_reports_numbers_and_fetches_nothing(
    tmp_path: Path, proxy: Proxy
) -> None:
    page = tmp_path / "report.html"
    result = run_cli(
        "simulate", "--from", str(EXAMPLE / "before.json"), "--phases", str(EXAMPLE / "phases"),
        "--devices", "3000", "--hubs", ",".join(HUBS), "--reprovision", "reset",
        "--html", str(page), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)

    dumped = chromium(page, tmp_path / "profile", proxy, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    screenshot = tmp_path / "report.png"
    shot = chromium(page, tmp_path / "profile-2", proxy, f"--screenshot={screenshot}")
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert page_requests(proxy) == []
    for log in (dumped.stderr, shot.stderr):
        assert not re.search(r"CONSOLE|Uncaught|Refused to", log), log[-2000:]

    dom = Elements()
    dom.feed(dumped.stdout)
    bars = {(a["data-hub"], a["data-when"]): int(a["data-count"] or "") for a in dom.having("bar")}
    last = report["steps"][-1]
    assert bars == {
        **{(hub, "before"): report["start"]["hubs"][hub] for hub in HUBS},
        **{(row["hub"], "after"): row["after"] for row in last["hubs"]},
    }
    for name in ("contoso-legacy-hub", "contoso-meters-1", "contoso-meters-2"):
        assert f">{name}<" in dumped.stdout

    cells = dom.having("cell")
    assert len(cells) == len(report["steps"]) * len(HUBS) ** 2
    for step, start in zip(report["steps"], range(0, len(cells), len(HUBS) ** 2), strict=True):
        shown = {
            (c["data-from"], c["data-to"]): int(c["data-count"] or "")
            for c in cells[start : start + len(HUBS) ** 2]
        }
        expected = {
            (before, after): step["matrix"].get(before, {}).get(after, 0)
            for before in HUBS
            for after in HUBS
        }
        assert shown == expected

    phase_bars = dom.having("phase-bar")
    assert len(phase_bars) == (1 + len(report["steps"])) * len(HUBS)
    quota = [a for a in dom.having("quota-bar") if a["data-kind"] == "all"]
    assert [int(a["data-registrations"] or "") for a in quota] == [
        step["dps"]["registrations"] for step in report["steps"]
    ]


def test_the_checks_catch_a_page_that_fetches_or_logs_an_error(
    tmp_path: Path, proxy: Proxy
) -> None:
    # The control for the test above: such a page shows in the proxy and in the browser's log.
    page = tmp_path / "fetching.html"
    page.write_text(
        '<img src="http://fonts.example.net/logo.png"><script>console.error("boom")</script>',
        encoding="utf-8",
    )
    result = chromium(page, tmp_path / "profile", proxy, "--dump-dom")
    assert any("fonts.example.net" in line for line in page_requests(proxy))
    assert re.search(r"CONSOLE.*boom", result.stderr)
