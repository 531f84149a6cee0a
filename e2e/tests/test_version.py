"""The agent refuses a server older than Kubernetes 1.32 with one clear line."""

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from e2e.tests.conftest import Kubectl


@pytest.fixture
def old_server(kubectl: Kubectl, tmp_path: Path) -> Iterator[Path]:
    """The real server's /version, rewritten to say 1.31, on a local port; a kubeconfig for it."""
    real = json.loads(kubectl.run("get", "--raw", "/version").stdout)
    old = {**real, "minor": "31", "gitVersion": "v1.31.9"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/version":
                payload = json.dumps(old).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload)
            else:
                self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "old", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}
        ],
        "users": [{"name": "u", "user": {"token": "x"}}],
        "contexts": [{"name": "old", "context": {"cluster": "old", "user": "u"}}],
        "current-context": "old",
    }
    path = tmp_path / "old.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    yield path
    server.shutdown()
    server.server_close()


def test_an_old_server_is_refused_with_one_line(old_server: Path, node: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nodekeeper.cli",
            "run",
            "--node-name",
            node,
            "--kubeconfig",
            str(old_server),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "nodekeeper: Kubernetes v1.31.9 is too old: nodekeeper needs 1.32 or newer "
        "(CRD selectableFields); upgrade the control plane\n"
    )
