"""The embedded engine takes only its own run's logins: a per-run credential (issue 27)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_snowpipe.doubles.sql import embedded

LOGIN = textwrap.dedent('''
    import json, sys
    import snowflake.connector
    params = json.loads(sys.stdin.read())
    try:
        conn = snowflake.connector.connect(
            user=params["user"], password=params["password"], account="fakesnow", host="127.0.0.1",
            port=params["port"], protocol="http", database="SNOWPIPE", schema="PUBLIC", login_timeout=10,
            network_timeout=20, session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        )
        print("IN", conn.cursor().execute("select count(*) from LOGIN_PROBE").fetchone()[0])
    except Exception as exc:
        print("REFUSED", type(exc).__name__, getattr(exc, "errno", None), exc)
''')


def _login_from_another_process(params: dict[str, Any]) -> str:
    """Another local process logging in: the parameters travel on stdin, never on its command line."""
    proc = subprocess.run([sys.executable, "-c", LOGIN], input=json.dumps(params), capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def engine(embedded_session: Any) -> embedded.EmbeddedEngine:
    embedded_session.sql("create or replace table LOGIN_PROBE as select 1 as A").collect()
    return embedded.engine()


@pytest.mark.parametrize(
    ("user", "password"), [("mallory", "guess"), (embedded.ENGINE_USER, "guess"), ("mallory", None)]
)
def test_any_other_login_is_refused_with_a_clear_error(engine, user, password):
    own = engine.connection_params()
    answer = _login_from_another_process({"user": user, "password": own["password"] if password is None else password,
                                          "port": own["port"]})
    assert answer.startswith("REFUSED DatabaseError 390100 ")
    assert "Incorrect username or password was specified" in answer and "embedded engine of a pytest-snowpipe run" in answer
    assert own["password"] not in answer


def test_the_runs_own_credential_logs_in_from_a_child_process(engine):
    params = engine.connection_params()
    assert _login_from_another_process({k: params[k] for k in ("user", "password", "port")}) == "IN 1"


def test_the_credential_is_long_and_random_and_the_server_binds_loopback_only(engine):
    first = engine.connection_params()
    assert first["host"] == "127.0.0.1" and len(first["password"]) >= 32
    assert engine._sock is not None and engine._sock.getsockname()[0] == "127.0.0.1"
    assert first["password"] == engine.connection_params()["password"]  # one per start, stable while it runs


def test_a_stage_upload_needs_the_signed_url_the_engine_hands_its_sessions(engine, embedded_session):
    import io
    import urllib.error
    import urllib.request

    embedded_session.sql("create stage if not exists UPLOAD_PROBE").collect()
    embedded_session.file.put_stream(io.BytesIO(b"mine"), "@UPLOAD_PROBE/own.txt", auto_compress=False)
    bucket = Path(engine._bucket or "")
    (own,) = [p for p in bucket.rglob("own.txt")]
    relative = own.relative_to(bucket).as_posix()
    for path in (relative, relative.replace("own.txt", "mallory.txt"), f"guess/{relative}"):
        request = urllib.request.Request(f"http://127.0.0.1:{engine.port}/fs_bucket/{path}", data=b"evil", method="PUT")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 403
    assert own.read_bytes() == b"mine" and not list(bucket.rglob("mallory.txt"))
