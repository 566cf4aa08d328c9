"""alert posts to a webhook from an environment variable; the URL never shows anywhere."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest


@pytest.fixture
def webhook():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "body": json.loads(body)})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/secret-token-abc123", received
    server.shutdown()


def test_failed_gate_posts_and_hides_url(pipeline_suite, webhook, monkeypatch):
    url, received = webhook
    monkeypatch.setenv("SNOWPIPE_ALERT_WEBHOOK", url)
    pytester = pipeline_suite()
    result = pytester.runpytest("--snowpipe-config", "threshold=9", "-rA")
    result.assert_outcomes(failed=1)
    assert len(received) == 1
    assert received[0]["path"] == "/hooks/secret-token-abc123"
    assert received[0]["body"]["verdict"] == "FAIL" and received[0]["body"]["metrics"] == {"score": 1.0}
    out = result.stdout.str() + result.stderr.str()
    assert "secret-token-abc123" not in out
    result.stdout.fnmatch_lines(["*-> alert: * (posted to $SNOWPIPE_ALERT_WEBHOOK)"])


def test_unreachable_webhook_fails_without_url(pipeline_suite, monkeypatch):
    monkeypatch.setenv("SNOWPIPE_ALERT_WEBHOOK", "http://127.0.0.1:9/secret-path-xyz")
    result = pipeline_suite().runpytest("--snowpipe-config", "threshold=9")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "alert webhook post failed" in out
    assert "secret-path-xyz" not in out
