"""Start ``mlflow models serve`` for a model URI on localhost and wait until it answers (tests, benches)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def model_server(model_uri: str, log_path: str | Path, *, env: dict[str, str] | None = None,
                 timeout: float = 180) -> Iterator[str]:
    """Serve ``model_uri`` on a free 127.0.0.1 port; yields the base URL; stops the server on exit."""
    port = free_port()
    # mlflow starts ``uvicorn`` by name: this interpreter's bin folder must be on PATH
    environ = {**os.environ, **(env or {})}
    environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), environ.get("PATH", "")])
    log_path = Path(log_path)
    with open(log_path, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager",
                                 "local", "--host", "127.0.0.1", "--port", str(port)],
                                env=environ, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"model server exited early:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"model server did not answer /ping in {timeout} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
