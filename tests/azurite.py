"""Azurite, the real storage server, run by the tests on free loopback ports and stopped by PID.

The npm package lives in the git-ignored ``.azurite/``: `.ci/run` installs it there, and so does
the first test that needs it when it is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
AZURITE_VERSION: Final = "3.35.0"
# Azurite's well-known development account: public, documented, and accepted by nothing else.
ACCOUNT: Final = "devstoreaccount1"
ACCOUNT_KEY: Final = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def azurite_executable() -> str:
    """Azurite from .azurite/, installed there with npm on first use (as .ci/run does), so that
    the test command alone works on a fresh checkout that has Node.js."""
    local = ROOT / ".azurite" / "node_modules" / ".bin" / "azurite"
    if not local.exists() and shutil.which("npm") is not None:
        subprocess.run(
            ["npm", "install", "--no-save", "--no-audit", "--no-fund", "--silent",
             "--prefix", str(ROOT / ".azurite"), f"azurite@{AZURITE_VERSION}"],
            check=False, stdout=subprocess.DEVNULL, timeout=600,
        )  # fmt: skip
    if local.exists():
        return str(local)
    raise RuntimeError(
        "Azurite is not installed and npm could not install it: install Node.js, then run "
        f"`npm install --no-save --prefix .azurite azurite@{AZURITE_VERSION}` (as .ci/run does)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class AzuriteServer:
    """One Azurite process serving blobs and tables. ``stop`` and ``start`` keep the ports, so a
    test can take the store away and bring it back under a running client. With ``location``
    the data survives a restart; without it Azurite keeps everything in memory."""

    def __init__(self, location: Path | None = None) -> None:
        self.location = location
        self.blob_port = free_port()
        self.table_port = free_port()
        self.queue_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.blob_port}/{ACCOUNT}"

    @property
    def table_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.table_port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};TableEndpoint={self.table_endpoint};"
        )

    def start(self, timeout: float = 30.0) -> None:
        command = [
            azurite_executable(),
            "--silent",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
            "--blobHost", "127.0.0.1", "--blobPort", str(self.blob_port),
            "--tableHost", "127.0.0.1", "--tablePort", str(self.table_port),
            "--queueHost", "127.0.0.1", "--queuePort", str(self.queue_port),
        ]  # fmt: skip
        if self.location is None:
            command.append("--inMemoryPersistence")
        else:
            self.location.mkdir(parents=True, exist_ok=True)
            command += ["--location", str(self.location)]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not (self._answers(self.blob_port) and self._answers(self.table_port)):
            if self.process.poll() is not None:
                raise RuntimeError(f"Azurite exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Azurite did not answer within {timeout} s")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # The npm shim may have started node as a child: the whole process group goes.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        # Wait until the ports are free again, so a restart can bind them.
        deadline = time.monotonic() + 10
        while (self._answers(self.blob_port) or self._answers(self.table_port)) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()

    @staticmethod
    def _answers(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False
