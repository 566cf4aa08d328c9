"""SnowflakeRegistry against the offline account: the real ``snowflake.ml.registry.Registry`` sends its SQL to
the account's Model Registry double (``doubles/model_registry.py``), and the tests read what it sent.

Only the network peer is replaced: snowflake-ml-python, Snowpark and the connector are the real ones, and a
promote runs the real ``log_model`` (packaging, PUT to a stage, ``CREATE MODEL ... FROM @stage``). The
exhaustive failure loop logs through ``_StoreLogged`` (the store adds the version as ``log_model`` leaves it
and hands back the real ``ModelVersion``) to stay fast; every other call there is the real client's SQL.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from snowflake.snowpark import Session

from pytest_snowpipe.doubles.offline_account import Call, OfflineAccount
from pytest_snowpipe.engines.connection import account_configured
from pytest_snowpipe.errors import RegistryError
from pytest_snowpipe.registry.champion import read_snowflake_champion
from pytest_snowpipe.registry.snowflake import SnowflakeRegistry

MODEL = "DB.S.CHURN"
CHANGES = re.compile(r"\s*(create|alter|drop)\s+model\b", re.I)


@pytest.fixture(scope="module")
def classifier() -> Any:
    from sklearn.linear_model import LogisticRegression

    x = np.random.RandomState(0).rand(40, 3)
    return LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int)), x[:5]


@pytest.fixture
def acct() -> Iterator[OfflineAccount]:
    with OfflineAccount(schemas=["DB.S"]) as account:
        yield account


@pytest.fixture
def session(acct: OfflineAccount) -> Iterator[Session]:
    s = acct.session()
    yield s
    s.close()


class _StoreLogged:
    """The real Registry, but ``log_model`` adds the version through the account's store (as log_model leaves
    it: created, metrics in its metadata) and returns the real ``ModelVersion`` of snowflake.ml."""

    def __init__(self, session: Session, acct: OfflineAccount) -> None:
        from snowflake.ml.registry import Registry

        self.real, self.acct = Registry(session=session), acct

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def log_model(self, model: Any, *, model_name: str, version_name: str, metrics: dict[str, Any], **_: Any) -> Any:
        self.acct.models.add_version(model_name, version_name, metrics=metrics)
        return self.real.get_model(model_name).version(version_name)


def changes(calls: list[Call]) -> list[str]:
    """The statements that change a model (CREATE/ALTER/DROP MODEL), stage names blanked."""
    return [re.sub(r"SNOWPARK_TEMP_STAGE_\w+", "<stage>", c.sql) for c in calls if c.kind == "sql" and CHANGES.match(c.sql)]


def state(acct: OfflineAccount, name: str = "churn") -> Any:
    """Everything the registry keeps about a model: versions with aliases and metadata, the default."""
    try:
        m = acct.models.model(name)
    except KeyError:
        return None
    return m.default_version, {v.name: (list(v.aliases), json.dumps(v.metadata, sort_keys=True)) for v in m.versions.values()}


def fail_each_step(
    acct: OfflineAccount, baseline: list[str], action: Callable[[], Any], what: str, before: Any,
    kept: tuple[str, ...], put_back: Callable[[], Any] | None = None,
) -> list[str]:
    """Fail the k-th SQL call of ``action`` for each statement of ``baseline`` (what it sends when all
    goes well): the problems found. Each failure must raise a RegistryError saying what was kept
    (one of ``kept``), at the k-th call, and leave the account as ``before``. A failure that left it
    otherwise is ``put_back`` by hand and the next step tried; without ``put_back`` the steps stop."""
    problems = []
    for k in range(1, len(baseline) + 1):
        step = f"step {k} ({baseline[k - 1][:60]})"
        acct.clear_log()
        acct.fail_at(k)
        try:
            action()
            problems.append(f"{step}: the {what} did not fail")
        except RegistryError as exc:
            if not any(message in str(exc) for message in kept):
                problems.append(f"{step}: {exc}")
        except Exception as exc:
            problems.append(f"{step}: not a RegistryError: {type(exc).__name__}: {exc}")
        acct.clear_failures()
        if state(acct) != before:
            problems.append(f"{step}: left {state(acct)}")
            if put_back is None:
                break
            put_back()
        if acct.sql_calls()[k - 1].error is None:
            problems.append(f"step {k}: the failure was not at the {k}th call")
    return problems


def promote(reg: SnowflakeRegistry, version: str, auc: float, classifier: Any) -> Any:
    model, sample = classifier
    return reg.promote("churn", model, metrics={"auc": auc}, fingerprints={"raw": version}, version=version,
                       log_model={"sample_input_data": sample, "options": {"relax_version": True}})


def test_the_real_registry_opens_on_the_offline_account(acct: OfflineAccount, session: Session) -> None:
    from snowflake.ml.registry import Registry

    acct.clear_log()
    assert Registry(session=session).location == "DB.S"
    assert [c.sql for c in acct.sql_calls()][:2] == [
        "SHOW DATABASES LIKE 'DB';", "SHOW SCHEMAS LIKE 'S'\n                IN DATABASE DB;"]
    assert all(c.status == 200 for c in acct.sql_calls())
    with pytest.raises(ValueError, match="Schema .*NOPE.* does not exist"):
        Registry(session=session, database_name="DB", schema_name="NOPE")


def test_promote_logs_the_model_and_crowns_it(acct: OfflineAccount, session: Session, classifier: Any) -> None:
    """The real log_model stages the files and creates the version; the crowning is the exact ALTER MODEL SQL."""
    reg = SnowflakeRegistry(session)
    acct.clear_log()
    promote(reg, "V1", 0.80, classifier)
    first = changes(acct.sql_calls())
    assert first[0] == "CREATE MODEL DB.S.CHURN WITH VERSION V1 FROM @DB.S.<stage>/model"
    assert first[1].startswith('ALTER MODEL DB.S.CHURN MODIFY VERSION V1 SET METADATA=$${"metrics": {"auc": 0.8}')
    assert '"snowpipe": {' in first[2] and first[3:] == [
        "ALTER MODEL DB.S.CHURN SET DEFAULT_VERSION = V1",
        "ALTER MODEL DB.S.CHURN VERSION V1 SET ALIAS = CHAMPION",  # no champion before: nothing to unset
    ]
    assert any(c.sql.startswith("PUT ") and "model.pkl" in c.sql for c in acct.sql_calls())  # the files went up

    acct.clear_log()
    v2 = promote(reg, "V2", 0.82, classifier)
    assert changes(acct.sql_calls())[0] == "ALTER MODEL DB.S.CHURN ADD VERSION V2 FROM @DB.S.<stage>/model"
    assert changes(acct.sql_calls())[3:] == [
        "ALTER MODEL DB.S.CHURN SET DEFAULT_VERSION = V2",
        "ALTER MODEL DB.S.CHURN VERSION CHAMPION UNSET ALIAS",
        "ALTER MODEL DB.S.CHURN VERSION V2 SET ALIAS = CHAMPION",
    ]
    assert v2.extra["previous_champion"] == "V1" and v2.metrics == {"auc": 0.82}
    assert acct.models.champion("churn") == "V2" and acct.models.model("churn").default_version == "V2"
    record = acct.models.model("churn").versions["V2"].metadata["metrics"]["snowpipe"]
    assert record["extra"] == {"previous_champion": "V1"} and record["fingerprints"] == {"raw": "V2"}
    assert reg.versions("churn") == ["V1", "V2"]


def test_a_promote_failing_at_any_step_leaves_the_registry_as_it_was(
    acct: OfflineAccount, session: Session, classifier: Any
) -> None:
    """Fail each SQL statement of V2's promote in turn: every time it raises a RegistryError and V1 is champion again."""
    reg = SnowflakeRegistry(session, registry=_StoreLogged(session, acct))
    promote(reg, "V1", 0.80, classifier)
    before = state(acct)

    def put_back() -> None:  # by hand, as an operator would
        for sql in ("ALTER MODEL churn SET DEFAULT_VERSION = V1", "ALTER MODEL churn VERSION CHAMPION UNSET ALIAS",
                    "ALTER MODEL churn VERSION V1 SET ALIAS = CHAMPION", "ALTER MODEL churn DROP VERSION V2"):
            session.sql(sql).collect()

    acct.clear_log()
    promote(reg, "V2", 0.82, classifier)  # the baseline: the statements a promote sends
    baseline = [c.sql for c in acct.sql_calls()]
    assert baseline[-3:] == ["ALTER MODEL DB.S.CHURN SET DEFAULT_VERSION = V2",
                             "ALTER MODEL DB.S.CHURN VERSION CHAMPION UNSET ALIAS",
                             "ALTER MODEL DB.S.CHURN VERSION V2 SET ALIAS = CHAMPION"]  # nothing is read back after
    put_back()
    assert state(acct) == before

    problems = fail_each_step(
        acct, baseline, lambda: promote(reg, "V2", 0.82, classifier), "promote", before,
        kept=("nothing was changed", "V1 is the champion again"), put_back=put_back,
    )
    assert not problems, "\n".join(problems)


def test_a_first_promote_that_fails_drops_the_model_it_made(
    acct: OfflineAccount, session: Session, classifier: Any
) -> None:
    """Snowflake refuses to drop a model's default version, and a first version is the default: undo = DROP MODEL."""
    reg = SnowflakeRegistry(session, registry=_StoreLogged(session, acct))
    acct.fail_when(lambda c: "SET ALIAS = CHAMPION" in c.sql)
    with pytest.raises(RegistryError, match="making V1 the champion failed .*injected failure.*deleted"):
        promote(reg, "V1", 0.80, classifier)
    assert state(acct) is None and changes(acct.sql_calls())[-1] == "DROP MODEL DB.S.CHURN"
    assert reg.default("churn") is None

    acct.models.add_version("churn", "V1")
    with pytest.raises(Exception, match="Cannot drop the default version 'V1'"):
        session.sql("ALTER MODEL churn DROP VERSION V1").collect()


def test_a_log_model_failing_after_it_made_the_version_removes_it(
    acct: OfflineAccount, session: Session, classifier: Any
) -> None:
    """log_model creates the version, then writes its metrics: a failure there must not leave V2 behind."""
    reg = SnowflakeRegistry(session)
    promote(reg, "V1", 0.80, classifier)
    before = state(acct)
    acct.fail_when(lambda c: c.sql.startswith("ALTER MODEL DB.S.CHURN MODIFY VERSION V2 SET METADATA"))
    acct.clear_log()
    with pytest.raises(RegistryError, match="logging version V2 .* failed .*injected failure.*nothing was changed"):
        promote(reg, "V2", 0.82, classifier)
    assert changes(acct.sql_calls())[0].startswith("ALTER MODEL DB.S.CHURN ADD VERSION V2 FROM")
    assert changes(acct.sql_calls())[-1] == "ALTER MODEL DB.S.CHURN DROP VERSION V2"
    assert state(acct) == before

    acct.fail_when(lambda c: "ADD VERSION V2" in c.sql)  # the version is never made: nothing to remove
    acct.clear_log()
    with pytest.raises(RegistryError, match="nothing was changed"):
        promote(reg, "V2", 0.82, classifier)
    assert [s.split(" FROM")[0] for s in changes(acct.sql_calls())] == ["ALTER MODEL DB.S.CHURN ADD VERSION V2"]
    assert state(acct) == before


def test_rollback_moves_the_alias_back_and_records_who_when_why(
    acct: OfflineAccount, session: Session, classifier: Any
) -> None:
    reg = SnowflakeRegistry(session, registry=_StoreLogged(session, acct))
    promote(reg, "V1", 0.80, classifier)
    promote(reg, "V2", 0.82, classifier)
    acct.clear_log()
    back = reg.rollback("churn", "misroutes loans", who="ana")
    sent = changes(acct.sql_calls())
    assert sent[0].startswith("ALTER MODEL DB.S.CHURN MODIFY VERSION V2 SET METADATA=$$") and sent[1:] == [
        "ALTER MODEL DB.S.CHURN SET DEFAULT_VERSION = V1",
        "ALTER MODEL DB.S.CHURN VERSION CHAMPION UNSET ALIAS",
        "ALTER MODEL DB.S.CHURN VERSION V1 SET ALIAS = CHAMPION",
    ]
    assert back.version == "V1" and acct.models.champion("churn") == "V1"
    assert acct.models.model("churn").default_version == "V1"
    record = acct.models.model("churn").versions["V2"].metadata["metrics"]["snowpipe_rolled_back"]
    assert record["by"] == "ana" and record["reason"] == "misroutes loans" and record["to"] == "V1"
    assert record["at"].startswith("20") and record["at"].endswith("+00:00")
    assert reg.versions("churn") == ["V1", "V2"]  # nothing deleted

    acct.clear_log()  # V1 was the first champion: no previous one, and nothing is sent
    with pytest.raises(RegistryError, match="V1 is the first champion"):
        reg.rollback("churn", "again")
    assert changes(acct.sql_calls()) == [] and acct.models.champion("churn") == "V1"


def test_a_rollback_failing_at_any_step_leaves_the_champion_where_it_was(
    acct: OfflineAccount, session: Session, classifier: Any
) -> None:
    """Fail each SQL statement of a rollback in turn: a RegistryError every time, V2 still the champion and
    the default, and no rolled-back record left on it."""
    reg = SnowflakeRegistry(session, registry=_StoreLogged(session, acct))
    promote(reg, "V1", 0.80, classifier)
    promote(reg, "V2", 0.82, classifier)
    before = state(acct)
    acct.clear_log()
    reg.rollback("churn", "baseline", who="ana")
    baseline = [c.sql for c in acct.sql_calls()]
    assert baseline[-1] == "ALTER MODEL DB.S.CHURN VERSION V1 SET ALIAS = CHAMPION"  # nothing is read back after
    for sql in ("ALTER MODEL churn SET DEFAULT_VERSION = V2", "ALTER MODEL churn VERSION CHAMPION UNSET ALIAS",
                "ALTER MODEL churn VERSION V2 SET ALIAS = CHAMPION"):
        session.sql(sql).collect()
    acct.models.model("churn").versions["V2"].metadata["metrics"].pop("snowpipe_rolled_back")
    assert state(acct) == before

    problems = fail_each_step(
        acct, baseline, lambda: reg.rollback("churn", "misroutes loans", who="ana"), "rollback", before,
        kept=("nothing was changed", "V2 is still the champion"),
    )
    assert not problems, "\n".join(problems)


def test_a_rollback_to_a_version_with_an_alias_of_yours_fails_and_changes_nothing(
    acct: OfflineAccount, session: Session, classifier: Any
) -> None:
    """Snowflake gives a version at most one alias: CHAMPION cannot go back onto a version someone aliased PROD."""
    reg = SnowflakeRegistry(session, registry=_StoreLogged(session, acct))
    promote(reg, "V1", 0.80, classifier)
    promote(reg, "V2", 0.82, classifier)
    session.sql("ALTER MODEL churn VERSION V1 SET ALIAS = PROD").collect()
    before = state(acct)
    with pytest.raises(RegistryError, match="rollback of 'churn' to V1 failed .*already has the alias 'PROD'.*"
                                            "V2 is still the champion"):
        reg.rollback("churn", "misroutes loans")
    assert state(acct) == before and acct.models.champion("churn") == "V2"


def test_our_messages_keep_the_line_of_a_snowflake_error_that_says_what() -> None:
    """Snowflake's errors read "SQL compilation error:" then, on the next line, what: both go into a message."""
    from pytest_snowpipe.errors import first_line

    err = RuntimeError("002002 (42000): SQL compilation error:\nAlias 'CHAMPION' already exists.\nmore")
    assert first_line(err) == "RuntimeError: 002002 (42000): SQL compilation error: Alias 'CHAMPION' already exists."
    assert first_line(RuntimeError("boom\nsecond")) == "RuntimeError: boom"  # a complete first line stays alone
    assert first_line(RuntimeError("")) == "RuntimeError"


def test_the_champion_is_read_by_alias(acct: OfflineAccount, session: Session, classifier: Any) -> None:
    assert read_snowflake_champion(session, "churn") is None  # before the first promote
    reg = SnowflakeRegistry(session, registry=_StoreLogged(session, acct))
    promote(reg, "V1", 0.80, classifier)
    promote(reg, "V2", 0.82, classifier)
    session.sql("ALTER MODEL churn SET DEFAULT_VERSION = V1").collect()  # the default moved by hand
    acct.clear_log()
    champion = read_snowflake_champion(session, "churn")
    assert champion is not None and champion.version == "V2" and champion.metrics == {"auc": 0.82}
    assert champion.location == "snowflake://DB.S" and champion.promoted_at
    reads = [c.sql for c in acct.sql_calls()]
    assert "SHOW VERSIONS IN MODEL DB.S.CHURN" in reads  # the alias lookup: the aliases column of every version
    assert not [c for c in acct.sql_calls() if CHANGES.match(c.sql)]  # reading changes nothing

    session.sql("ALTER MODEL churn VERSION CHAMPION UNSET ALIAS").collect()  # promoted before aliases
    fallback = read_snowflake_champion(session, "churn")
    assert fallback is not None and fallback.version == "V1"  # the default version


def test_prune_never_deletes_the_champion(acct: OfflineAccount, session: Session, classifier: Any) -> None:
    reg = SnowflakeRegistry(session, registry=_StoreLogged(session, acct))
    for i in range(1, 5):
        promote(reg, f"V{i}", 0.8 + i / 100, classifier)
    reg.rollback("churn", "bad")  # V3 is the champion again
    session.sql("ALTER MODEL churn SET DEFAULT_VERSION = V4").collect()  # and V4 the default
    acct.clear_log()
    assert reg.prune("churn", keep=1) == ["V1", "V2"]
    assert changes(acct.sql_calls()) == ["ALTER MODEL DB.S.CHURN DROP VERSION V1", "ALTER MODEL DB.S.CHURN DROP VERSION V2"]
    acct.clear_log()
    assert reg.prune("churn", keep=0) == []  # the champion and the default stay at keep=0
    assert changes(acct.sql_calls()) == [] and reg.versions("churn") == ["V3", "V4"]
    assert acct.models.champion("churn") == "V3"


@pytest.mark.skipif(not account_configured(), reason="no Snowflake account configured (connections.toml / "
                    "SNOWFLAKE_CONNECTION_NAME): the registry's live SQL can be recorded only against a real account")
def test_record_the_live_registry_sql_and_compare_it_with_the_double(tmp_path: Any, classifier: Any) -> None:  # pragma: no cover
    """Promote twice, roll back, read the champion and prune on a real account (recording the SQL, into
    SNOWPIPE_TRAFFIC_DIR if set), then the same on the offline account: the model-changing statements must be
    the same text, and the registry statements the same sequence."""
    from pathlib import Path

    from pytest_snowpipe.doubles.traffic import differences, peer_of, record
    from pytest_snowpipe.engines.connection import create_session, load_connection

    name = os.environ.get("SNOWFLAKE_CONNECTION_NAME", "default")
    live = create_session(name)
    db, sch = (live.get_current_database() or "").strip('"'), (live.get_current_schema() or "").strip('"')
    live.sql("DROP MODEL IF EXISTS SNOWPIPE_TRAFFIC_CHURN").collect()

    def scenario(session: Session) -> None:
        reg = SnowflakeRegistry(session)
        for i, auc in ((1, 0.80), (2, 0.82), (3, 0.81)):
            model, sample = classifier
            reg.promote("SNOWPIPE_TRAFFIC_CHURN", model, metrics={"auc": auc}, version=f"V{i}",
                        log_model={"sample_input_data": sample, "options": {"relax_version": True}})
        reg.rollback("SNOWPIPE_TRAFFIC_CHURN", "live traffic check", who="snowpipe-tests")
        assert read_snowflake_champion(session, "SNOWPIPE_TRAFFIC_CHURN").version == "V2"  # type: ignore[union-attr]
        assert reg.prune("SNOWPIPE_TRAFFIC_CHURN", keep=0) == ["V1", "V3"]  # V2: champion and default

    def registry_calls(calls: list[Call]) -> list[Call]:
        return [c for c in calls if c.kind == "sql" and re.match(r"\s*(show\s+(models|versions|functions)|create\s+model|"
                                                                 r"alter\s+model|drop\s+model)", c.sql, re.I)]

    try:
        with record(peer_of(load_connection(name))) as rec:
            scenario(live)
    finally:
        live.sql("DROP MODEL IF EXISTS SNOWPIPE_TRAFFIC_CHURN").collect()
    rec.save(Path(os.environ.get("SNOWPIPE_TRAFFIC_DIR", str(tmp_path))) / "live_registry_traffic.json")
    with OfflineAccount(schemas=[f"{db}.{sch}"]) as account:
        offline = account.session(db, sch)
        scenario(offline)
        assert differences(registry_calls(rec.calls), registry_calls(account.calls)) == []
        norm = [re.sub(r'\$\$.*\$\$', "$$...$$", s) for s in changes(registry_calls(rec.calls))]
        assert norm == [re.sub(r'\$\$.*\$\$', "$$...$$", s) for s in changes(registry_calls(account.calls))]
