"""`rlm-plugins serve` as a real process (a YAML config file), for the replica, shutdown and logging tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.integration_tests.server.conftest import free_port

ROOT = Path(__file__).resolve().parents[3]


class ServerProcess:
    """`python -m rlm_plugins.cli serve --config FILE --port P`; stderr (JSON logs) goes to `log_path`."""

    def __init__(
        self, workdir: Path, config: dict[str, Any], env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> None:
        self.port = free_port()
        self.config_path = workdir / f"server-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / f"server-{self.port}.log"
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.root_url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "rlm_plugins.cli", "serve", "--config", str(self.config_path)]
        command += ["--port", str(self.port), *(args or [])]
        environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=environment, cwd=ROOT)

    def wait_ready(self, timeout: float = 60.0) -> ServerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}: {self.log_path.read_text()}")
            try:
                if httpx.get(self.root_url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server did not become ready: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
