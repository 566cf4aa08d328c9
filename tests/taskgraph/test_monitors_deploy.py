"""Monitors at deploy, against the offline account: made after the graph, replaced and dropped on redeploy, undone with
the graph on a failure at any step, refused clearly by an account without Data Metric Functions, listed in the plan
and evaluated by the rehearsal on the watched table the emulated run wrote."""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pytest_snowpipe as sp
from pytest_snowpipe.contracts.monitors import MonitorError
from pytest_snowpipe.doubles.offline_account import OfflineAccount
from pytest_snowpipe.pipeline.graph import PipelineGraph
from pytest_snowpipe.pipeline.remote import RemoteSpec
from pytest_snowpipe.release import execute
from pytest_snowpipe.taskgraph.monitors_deploy import planned_monitors
from tests.taskgraph.test_compile import pipeline, stage
from tests.taskgraph.test_deploy import deploy, graph_state, options

RAW = sp.Contract(ID=sp.column(int, unique=True, ge=0), X=sp.column(float, ge=0, le=9))
TABLE = ("DB", "SCH", "SNOWPIPE_DEMO_RAW_LATEST")


@sp.expect(RAW, monitor="1h")
def raw(snowpipe_session):
    return snowpipe_session.create_dataframe([(i, float(i)) for i in range(10)], schema=["ID", "X"])


@sp.expect(RAW, monitor="5m")
def raw_every_5m(snowpipe_session):  # raw's very code, watched every 5 minutes
    return snowpipe_session.create_dataframe([(i, float(i)) for i in range(10)], schema=["ID", "X"])


@sp.expect(RAW, monitor="TRIGGER_ON_CHANGES")
def raw_on_changes(snowpipe_session):
    return snowpipe_session.create_dataframe([(i, float(i)) for i in range(10)], schema=["ID", "X"])


@sp.expect(sp.Contract(ID=sp.column(int), X=sp.column(float, ge=5)), monitor="5m")
def raw_breaks_its_monitor(snowpipe_session):  # X < 5 on half the rows: the rehearsal shows the monitor violated
    return snowpipe_session.create_dataframe([(i, float(i)) for i in range(10)], schema=["ID", "X"])


def monitored(func: Callable[..., Any] = raw) -> PipelineGraph:
    g = pipeline()
    return PipelineGraph(stages=(stage(func, env=("snowpipe_session",), name="raw"), *g.stages[1:]), gates=g.gates)


@pytest.fixture
def account() -> Iterator[OfflineAccount]:
    with OfflineAccount(schemas=["DB.SCH"], stages=["DB.SCH.ST"]) as acct:
        yield acct


def monitor_state(account: OfflineAccount) -> dict[Any, Any]:
    return copy.deepcopy({k: vars(t) for k, t in account.monitors.tables.items()})


def test_first_deploy_applies_the_monitor_after_the_graph(account: OfflineAccount, tmp_path: Any) -> None:
    code, out = deploy(account, tmp_path, monitored())
    assert code == 0, out
    assert list(account.monitors.tables) == [TABLE]  # no staging table left
    table = account.monitors.tables[TABLE]
    assert table.columns == [("ID", "NUMBER(38,0)"), ("X", "FLOAT")] and table.schedule == "60 MINUTE"
    assert [(m["expectation"], m["on"], m["expression"]) for m in table.metrics] == [
        ("ID_NULLABLE", ["ID"], "VALUE = 0"), ("ID_GE", ["ID"], "VALUE = 0"), ("ID_UNIQUE", ["ID"], "VALUE = 0"),
        ("X_NULLABLE", ["X"], "VALUE = 0"), ("X_GE_LE", ["X"], "VALUE = 0"),
    ]
    sql = [c.sql for c in account.sql_calls()]
    first_dmf = sql.index("SHOW TABLES LIKE 'SNOWPIPE_DEMO_%_LATEST' IN SCHEMA DB.SCH")
    assert all("DATA METRIC" not in s for s in sql[:first_dmf])
    assert account.rest_calls()[-1].index < account.sql_calls()[first_dmf].index  # after the graph is made
    assert sql[first_dmf:] == [
        "SHOW TABLES LIKE 'SNOWPIPE_DEMO_%_LATEST' IN SCHEMA DB.SCH",
        'CREATE OR REPLACE TABLE DB.SCH.SNOWPIPE_DEMO_RAW_NEXT ("ID" NUMBER(38,0), "X" FLOAT)',
        *[s for s in sql if s.startswith("CREATE DATA METRIC FUNCTION")],
        "ALTER TABLE DB.SCH.SNOWPIPE_DEMO_RAW_NEXT SET DATA_METRIC_SCHEDULE = '60 MINUTE'",
        *[s for s in sql if " ADD DATA METRIC FUNCTION " in s],
        "ALTER TABLE DB.SCH.SNOWPIPE_DEMO_RAW_NEXT RENAME TO DB.SCH.SNOWPIPE_DEMO_RAW_LATEST",
    ]
    assert len([s for s in sql if s.startswith("CREATE DATA METRIC FUNCTION")]) == 2  # ID ge, X range
    assert "monitors: 1 watched table(s), 5 Data Metric Function(s) with expectations in DB.SCH" in out
    assert "SNOWPIPE_DEMO_RAW_LATEST (raw): 5 of 5 expectation(s) met" in out  # the rehearsal's evaluation


def test_a_redeploy_replaces_the_monitor_and_one_without_monitors_drops_it(account: OfflineAccount, tmp_path: Any) -> None:
    assert deploy(account, tmp_path, monitored())[0] == 0
    code, out = deploy(account, tmp_path, monitored(raw_on_changes))
    assert code == 0, out
    assert list(account.monitors.tables) == [TABLE] and account.monitors.tables[TABLE].schedule == "TRIGGER_ON_CHANGES"
    assert len(account.monitors.tables[TABLE].metrics) == 5  # replaced, not added twice
    swaps = [c.sql for c in account.sql_calls() if " SWAP WITH " in c.sql]
    assert swaps == ["ALTER TABLE DB.SCH.SNOWPIPE_DEMO_RAW_NEXT SWAP WITH DB.SCH.SNOWPIPE_DEMO_RAW_LATEST"]
    code, out = deploy(account, tmp_path, pipeline())
    assert code == 0, out
    assert account.monitors.tables == {}
    assert "DROP TABLE IF EXISTS DB.SCH.SNOWPIPE_DEMO_RAW_LATEST" in [c.sql for c in account.sql_calls()]


def test_a_redeploy_failing_at_any_monitor_step_leaves_graph_and_monitors_as_they_were(
    account: OfflineAccount, tmp_path: Any
) -> None:
    assert deploy(account, tmp_path, monitored())[0] == 0
    account.clear_log()
    assert deploy(account, tmp_path, monitored(raw_on_changes))[0] == 0
    made = [c.sql for c in account.sql_calls() if "_NEXT" in c.sql or c.sql.startswith(("SHOW TABLES", "CREATE DATA"))]
    assert made[-1] == "DROP TABLE IF EXISTS DB.SCH.SNOWPIPE_DEMO_RAW_NEXT"  # the old monitor, once the new one is in
    adds = [s for s in made if " ADD DATA METRIC " in s]
    steps = [made[0], made[1], made[2], *(s for s in made if "DATA_METRIC_SCHEDULE" in s), adds[0], adds[-1], made[-2]]
    assert steps[-1].endswith("SWAP WITH DB.SCH.SNOWPIPE_DEMO_RAW_LATEST") and len(set(steps)) == 7
    assert deploy(account, tmp_path, monitored())[0] == 0  # back to the hourly monitor
    graph, monitors = graph_state(account), monitor_state(account)
    for k, failing in enumerate(steps):  # a failed deploy changes nothing, so each starts from the same state
        account.fail_when(lambda c, s=failing: c.sql == s, message="warehouse suspended")
        code, out = deploy(account, tmp_path, monitored(raw_on_changes))
        account.clear_failures()
        assert code == 1, (k, failing, out)
        assert graph_state(account) == graph, (k, failing)
        assert monitor_state(account) == monitors, (k, failing)
        assert "failed while applying the monitors" in out and "warehouse suspended" in out, out
        assert "the previous graph was restored" in out and "the monitors were left as they were" in out, out


def test_a_failing_drop_after_the_swap_keeps_the_new_monitor(account: OfflineAccount, tmp_path: Any) -> None:
    assert deploy(account, tmp_path, monitored())[0] == 0
    account.fail_when(lambda c: c.sql.startswith("DROP TABLE IF EXISTS DB.SCH.SNOWPIPE_DEMO_RAW_NEXT"))
    code, out = deploy(account, tmp_path, monitored(raw_on_changes))
    assert code == 0, out
    assert account.monitors.tables[TABLE].schedule == "TRIGGER_ON_CHANGES"


def test_an_account_without_data_metric_functions_gets_a_clear_error_and_nothing(tmp_path: Any) -> None:
    with OfflineAccount(schemas=["DB.SCH"], stages=["DB.SCH.ST"], dmf_supported=False) as account:
        code, out = deploy(account, tmp_path, monitored())
        assert code == 1
        assert account.task_names(schema="SCH") == [] and account.monitors.tables == {}
        assert "this account does not support Data Metric Functions (" in out
        assert "Unsupported feature 'DATA METRIC FUNCTION'" in out and "Enterprise Edition" in out
        assert "remove monitor= from sp.expect" in out and "what was created was dropped" in out
        assert deploy(account, tmp_path, pipeline())[0] == 0  # without monitors the same account deploys


def test_undeploy_drops_the_watched_tables(account: OfflineAccount, tmp_path: Any) -> None:
    assert deploy(account, tmp_path, monitored())[0] == 0
    out: list[str] = []
    code = execute(monitored(), options(tmp_path), target="snowflake", undeploy=True,
                   session_factory=lambda: account.session("DB", "SCH"), write=out.append)
    assert code == 0 and account.task_names(schema="SCH") == [] and account.monitors.tables == {}


def test_the_plan_lists_the_monitors_and_the_rules_left_to_tests(tmp_path: Any) -> None:
    out: list[str] = []
    assert execute(monitored(), options(tmp_path), target="snowflake", dry_run=True, write=out.append) == 0
    text = "\n".join(out)
    assert "monitors:   1 watched table(s) in DB.SCH" in text
    assert "raw" in text and "-> SNOWPIPE_DEMO_RAW_LATEST  DATA_METRIC_SCHEDULE = '60 MINUTE'" in text
    assert "ID_UNIQUE" in text and "SNOWFLAKE.CORE.DUPLICATE_COUNT ON (ID) EXPECT VALUE = 0" in text


def test_the_rehearsal_shows_a_violated_monitor(tmp_path: Any) -> None:
    """The watched table takes the run's output before the blocking check: the monitor records the bad run too."""
    out: list[str] = []
    assert execute(monitored(raw_breaks_its_monitor), options(tmp_path), target="local", write=out.append) == 1
    text = "\n".join(out)
    assert "first error: RAW" in text  # the contract still blocks the run
    assert "SNOWPIPE_DEMO_RAW_LATEST (raw): 2 of 3 expectation(s) met" in text
    assert [line.split() for line in text.splitlines() if "X_GE " in line] == [
        ["X_GE", "value", "5", "VALUE", "=", "0", "VIOLATED"]]


def test_a_monitor_on_a_remote_stage_is_refused_at_compile() -> None:
    g = monitored()
    remote = RemoteSpec(compute_pool="POOL", stage_name="JOBS", target_instances=1)
    graph = PipelineGraph(stages=(dataclasses.replace(g.stages[0], remote=remote), *g.stages[1:]), gates=g.gates)
    with pytest.raises(MonitorError, match=r"stage raw: sp.expect\(..., monitor='60 MINUTE'\) is on a remote stage"):
        planned_monitors(graph, "DEMO")
    assert [m.table for m in planned_monitors(g, "DEMO")] == ["SNOWPIPE_DEMO_RAW_LATEST"]


def test_a_cron_monitor_is_checked_like_a_graph_schedule() -> None:
    @sp.expect(RAW, monitor="USING CRON 0 6 * * 9 UTC")
    def bad(snowpipe_session): ...

    with pytest.raises(MonitorError, match="stage raw: monitor: .*day of week"):
        planned_monitors(monitored(bad), "DEMO")


def test_two_monitors_on_one_output_are_refused() -> None:
    twice = sp.expect(RAW, monitor="5m")(sp.expect(RAW, monitor="1h")(lambda snowpipe_session: None))
    with pytest.raises(MonitorError, match="two sp.expect"):
        planned_monitors(monitored(twice), "DEMO")


MONITORED_SUITE = '''
import pytest
import pytest_snowpipe as sp

@pytest.fixture(scope="session")
@sp.expect(sp.Contract(ID=sp.column(int, unique=True)), monitor=MONITOR)
def raw(snowpipe_session):
    return snowpipe_session.create_dataframe([(1,), (2,)], schema=["ID"])

@pytest.fixture(scope="session")
def model(raw):
    return {"weights": raw.count()}

@pytest.fixture(scope="session")
def metrics(model):
    return {"score": model["weights"] / 10}
'''
GATE = '''
import pytest

@pytest.mark.snowpipe_gate(on_pass="promote", on_fail="alert")
def test_gate(metrics):
    assert metrics["score"] >= 0.1
'''


@pytest.mark.parametrize(("monitor", "code", "expected"), [
    ('"15m"', 0, "-> SNOWPIPE_SNOWPIPE_PIPELINE_RAW_LATEST  DATA_METRIC_SCHEDULE = '15 MINUTE'"),
    ('"USING CRON 0 6 * * 9 UTC"', 4, "stage raw: monitor: 'USING CRON 0 6 * * 9 UTC' has an invalid cron day of week"),
])
def test_a_suite_s_dry_run_lists_its_monitor_or_names_the_bad_one(pytester: pytest.Pytester, monitor: str, code: int,
                                                                   expected: str) -> None:
    pytester.makeconftest(MONITORED_SUITE.replace("MONITOR", monitor))
    pytester.makepyfile(test_gate=GATE)
    result = pytester.runpytest("--snowpipe-deploy", "--snowpipe-dry-run", "-p", "no:cacheprovider")
    assert result.ret == code
    out = result.stdout.str() + result.stderr.str()
    assert expected in out
    assert "Traceback" not in out


def test_a_schedule_snowflake_lacks_fails_the_suite_s_collection_with_the_valid_ones(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(MONITORED_SUITE.replace("MONITOR", '"2h"'))
    pytester.makepyfile(test_gate=GATE)
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret != 0
    assert "monitor='2h' is 120 minutes, which Snowflake's DATA_METRIC_SCHEDULE does not offer" in result.stderr.str()


def test_a_run_refills_the_watched_table_with_the_contract_s_columns_and_skips_what_the_check_refuses(
    embedded_session: Any,
) -> None:
    import pandas as pd

    from pytest_snowpipe.taskgraph.monitor_tables import refresh

    contract = sp.Contract(ID=sp.column(int), strict=False)

    @sp.expect(contract, key="train", monitor="1h")
    def split(): ...

    table = "SNOWPIPE_T26A_SPLIT_TRAIN_LATEST"
    frame = embedded_session.create_dataframe([(1, "x"), (2, "y")], schema=["ID", "EXTRA"])
    try:
        assert refresh("T26A", "split", split, {"train": frame}, embedded_session) == [table]
        assert embedded_session.table(table).columns == ["ID"]  # only the contract's columns
        assert sorted(r[0] for r in embedded_session.table(table).collect()) == [1, 2]
        smaller = embedded_session.create_dataframe([(7, "z")], schema=["ID", "EXTRA"])
        assert refresh("T26A", "split", split, {"train": smaller}, embedded_session) == [table]
        assert [r[0] for r in embedded_session.table(table).collect()] == [7]  # replaced, not appended
        for refused in ({"train": pd.DataFrame({"ID": [1]})}, {"test": frame}, frame,
                        {"train": embedded_session.create_dataframe([(1,)], schema=["OTHER"])}):
            assert refresh("T26A", "split", split, refused, embedded_session) == []
        assert [r[0] for r in embedded_session.table(table).collect()] == [7]  # the last rows it could take
    finally:
        embedded_session.sql(f"DROP TABLE IF EXISTS {table}").collect()
