"""`zdm proxy health`: the container image's health check asks the configured proxy's
/health/readiness (here a stand-in HTTP server answering as the proxy does) and says why not."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from zdm.cli.main import app

runner = CliRunner()


class _Proxy(BaseHTTPRequestHandler):
    answers: dict[str, tuple[int, dict]] = {}

    def do_GET(self):  # noqa: N802 - http.server's name
        status, body = self.answers.get(self.path, (404, {}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def _health(tmp_path, port: int, *args: str, address: str = "0.0.0.0"):
    config = tmp_path / "zdm.yaml"
    config.write_text(f"proxy:\n  metrics_address: {address}\n  metrics_port: {port}\n")
    return runner.invoke(app, ["proxy", "health", "--config", str(config), *args])


def _said(result) -> str:
    return " ".join(result.output.split())


def test_ready_when_the_proxy_says_so(endpoint, tmp_path):
    _Proxy.answers = {"/health/readiness": (200, {"Status": "UP"}), "/health/liveness": (200, {})}
    result = _health(tmp_path, endpoint.server_address[1])  # 0.0.0.0: asked on loopback
    assert result.exit_code == 0, result.output
    assert "ready" in _said(result) and '"Status": "UP"' in _said(result)


def test_not_ready_says_the_proxys_reason(endpoint, tmp_path):
    _Proxy.answers = {"/health/readiness": (503, {"Status": "DOWN", "Reason": "no connection to target"}),
                      "/health/liveness": (200, {})}
    result = _health(tmp_path, endpoint.server_address[1], address="127.0.0.1")
    assert result.exit_code == 1
    assert "not ready" in _said(result) and "no connection to target" in _said(result)
    # alive all the same
    result = _health(tmp_path, endpoint.server_address[1], "--liveness", address="127.0.0.1")
    assert result.exit_code == 0 and "alive" in _said(result), result.output


def test_no_proxy_there_is_not_healthy(tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _health(tmp_path, port)
    assert result.exit_code == 1 and "no answer" in _said(result) and f"127.0.0.1:{port}" in _said(result)


def test_a_proxy_without_its_endpoint_is_told(tmp_path):
    config = tmp_path / "zdm.yaml"
    config.write_text("proxy:\n  metrics_enabled: false\n")
    result = runner.invoke(app, ["proxy", "health", "--config", str(config)])
    assert result.exit_code == 2 and "metrics_enabled" in _said(result)
