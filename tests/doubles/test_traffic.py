"""doubles.traffic: the client-side recorder that lets the offline account be checked against a real one."""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pytest_snowpipe.doubles.offline_account import Call, OfflineAccount, sequence
from pytest_snowpipe.doubles.traffic import Recorder, differences, load, peer_of, record
from pytest_snowpipe.engines.connection import account_configured
from pytest_snowpipe.redact import REDACTED, Redactor
from pytest_snowpipe.release import execute
from tests.taskgraph.test_compile import pipeline
from tests.taskgraph.test_deploy import FIRST_DEPLOY_REST, options


def test_the_recorder_sees_exactly_what_the_account_received(tmp_path: Path) -> None:
    """One deploy with its rehearsal: the recorder for the account's peer holds the account's own log, call for
    call; an unfiltered recorder also holds the embedded engine's SQL of the rehearsal (so the filter matters)."""
    with OfflineAccount(schemas=["DB.SCH"], stages=["DB.SCH.ST"]) as account:
        with record() as everything, record(f"127.0.0.1:{account.port}") as deploy:
            code = execute(pipeline(), options(tmp_path, schedule=timedelta(minutes=30), sandbox=False),
                           target="snowflake", session_factory=lambda: account.session("DB", "SCH"),
                           write=lambda line: None, sleep=lambda s: None)
        assert code == 0
        assert differences(deploy.calls, account.calls) == []
        assert [c.body.strip() for c in deploy.calls if c.kind == "sql"] == [c.body.strip() for c in account.sql_calls()]
        assert [(c.path, c.query) for c in deploy.calls if c.kind == "rest"] == \
            [(c.path, c.query) for c in account.rest_calls()]
        assert sequence(c for c in deploy.calls if c.kind == "rest") == FIRST_DEPLOY_REST
        assert len(everything.calls) > len(deploy.calls)
        # the first deploy's two lookups find no graph: the client saw the account's 404s
        assert [c.status for c in deploy.calls if c.kind == "rest"][:2] == [404, 404]
        assert [c.status for c in deploy.calls] == [c.status for c in account.calls]


def test_a_failed_call_is_recorded_with_its_status(tmp_path: Path) -> None:
    with OfflineAccount(schemas=["DB.SCH"], stages=["DB.SCH.ST"]) as account:
        session = account.session("DB", "SCH")
        with record(f"127.0.0.1:{account.port}") as rec:
            account.fail_when(lambda c: c.kind == "sql" and "BOOM" in c.sql, status=2003, message="no such thing")
            with pytest.raises(Exception, match="no such thing"):
                session.sql("SELECT * FROM BOOM").collect()
        assert rec.calls[-1].status == 2003 and "no such thing" in (rec.calls[-1].error or "")
        assert differences(rec.calls, account.calls) == []


def test_differences_name_the_departing_call() -> None:
    a = [Call(1, "rest", "GET", "databases/DB/schemas/S/tasks/D", status=404),
         Call(2, "rest", "POST", "databases/DB/schemas/S/tasks", {"createMode": "orReplace"}, status=200)]
    b = [a[0], Call(2, "rest", "POST", "databases/DB/schemas/S/tasks", {"createMode": "errorIfExists"}, status=200)]
    diff = differences(a, b)
    assert "-POST tasks?createMode=orReplace -> ok" in diff and "+POST tasks?createMode=errorIfExists -> ok" in diff
    assert differences(a, list(a)) == []
    # the same call, answered differently, is a difference too
    assert differences(a, [Call(1, "rest", "GET", "databases/DB/schemas/S/tasks/D", status=200), a[1]]) != []


def test_nothing_secret_is_kept_and_a_recording_round_trips(tmp_path: Path) -> None:
    rec = Recorder(Redactor(["hunter2-secret"]))
    rec.sql("CREATE SECRET X TYPE=PASSWORD USERNAME='u' PASSWORD='hunter2-secret'")
    rec.rest("post", "https://acme.snowflakecomputing.com/api/v2/databases/DB/schemas/S/tasks?x=1",
             {"createMode": "orReplace"}, '{"name": "T", "config": {"note": "token=abcdefgh12345"}}')
    saved = rec.save(tmp_path / "traffic.json")
    text = saved.read_text()
    assert "hunter2-secret" not in text and "abcdefgh12345" not in text and REDACTED in text
    back = load(saved)
    assert back == rec.calls
    assert back[1].path == "databases/DB/schemas/S/tasks" and back[1].method == "POST"
    assert back[1].body["name"] == "T"


def test_peer_of_fills_the_connectors_defaults() -> None:
    assert peer_of({"account": "acme-xy12345"}) == "acme-xy12345.snowflakecomputing.com:443"
    assert peer_of({"host": "127.0.0.1", "port": 8123}) == "127.0.0.1:8123"


@pytest.mark.skipif(not account_configured(), reason="no Snowflake account configured (connections.toml / "
                    "SNOWFLAKE_CONNECTION_NAME): a live deploy's traffic can be recorded only against a real account")
def test_record_a_live_deploy_and_compare_it_with_the_double(tmp_path: Any) -> None:  # pragma: no cover - account
    """Records the REST and SQL traffic of a live first deploy (into SNOWPIPE_TRAFFIC_DIR if set, to keep), then
    makes the same deploy against the offline account: any departure of the double is listed."""
    from pytest_snowpipe.engines.connection import create_session, load_connection
    from pytest_snowpipe.release import DeployOptions
    from pytest_snowpipe.taskgraph.compile import CompileOptions

    name = os.environ.get("SNOWFLAKE_CONNECTION_NAME", "default")
    params = load_connection(name)
    live = create_session(name)
    db, sch = live.get_current_database(), live.get_current_schema()
    stage = f"{db}.{sch}.SNOWPIPE_TRAFFIC_STAGE"
    live.sql(f"CREATE STAGE IF NOT EXISTS {stage}").collect()
    live.sql(f"DROP TASK IF EXISTS {db}.{sch}.SNOWPIPE_TRAFFIC").collect()
    opts = options(tmp_path, schedule=timedelta(days=1), sandbox=False)
    opts = DeployOptions(compile=CompileOptions(**{**opts.compile.__dict__, "database": db, "schema": sch,
                                                   "dag_name": "SNOWPIPE_TRAFFIC", "stage_location": f"@{stage}"}),
                         sandbox=False)
    with record(peer_of(params)) as rec:
        assert execute(pipeline(), opts, target="snowflake", session_factory=lambda: live) == 0
    out = Path(os.environ.get("SNOWPIPE_TRAFFIC_DIR", str(tmp_path)))
    rec.save(out / "live_deploy_traffic.json")
    ident = (db or "").strip('"'), (sch or "").strip('"')
    with OfflineAccount(schemas=[".".join(ident)], stages=[stage.replace('"', "")]) as account:
        assert execute(pipeline(), opts, target="snowflake", session_factory=lambda: account.session(*ident)) == 0
        assert differences(rec.calls, account.calls) == []
