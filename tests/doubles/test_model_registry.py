"""The offline account's Model Registry (doubles/model_registry.py): the result shapes and the documented rules,
read through a real Snowpark session, and the real snowflake.ml client reading them back."""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from snowflake.snowpark import Session

from pytest_snowpipe.doubles.offline_account import OfflineAccount


@pytest.fixture
def acct() -> Iterator[OfflineAccount]:
    with OfflineAccount(schemas=["DB.S", "DB.OTHER"]) as account:
        yield account


@pytest.fixture
def session(acct: OfflineAccount) -> Iterator[Session]:
    s = acct.session()
    yield s
    s.close()


def fail(session: Session, sql: str, match: str) -> None:
    with pytest.raises(Exception, match=match):
        session.sql(sql).collect()


def test_show_versions_has_snowflakes_columns_and_system_aliases(acct: OfflineAccount, session: Session) -> None:
    acct.models.add_version("churn", "V1", metrics={"auc": 0.8})
    acct.models.add_version("churn", "V2")
    acct.models.add_version("churn", "V3")
    session.sql("ALTER MODEL churn VERSION V2 SET ALIAS = CHAMPION").collect()
    rows = session.sql("SHOW VERSIONS IN MODEL DB.S.CHURN").collect()
    assert list(rows[0].as_dict()) == ["created_on", "name", "aliases", "comment", "database_name", "schema_name",
                                       "model_name", "is_default_version", "functions", "metadata", "user_data",
                                       "model_spec"]
    assert [(r["name"], json.loads(r["aliases"]), r["is_default_version"]) for r in rows] == [
        ("V1", ["DEFAULT", "FIRST"], True), ("V2", ["CHAMPION"], False), ("V3", ["LAST"], False)]
    assert rows[0]["created_on"] < rows[1]["created_on"] < rows[2]["created_on"]  # datetimes, in creation order
    assert json.loads(rows[0]["metadata"])["metrics"] == {"auc": 0.8}
    assert [r["name"] for r in session.sql("SHOW VERSIONS LIKE 'v_' IN MODEL churn").collect()] == ["V1", "V2", "V3"]
    (model,) = session.sql("SHOW MODELS LIKE 'CHURN' IN SCHEMA DB.S").collect()
    assert model["default_version_name"] == "V1" and json.loads(model["versions"]) == ["V1", "V2", "V3"]
    assert session.sql("SHOW MODELS IN SCHEMA DB.OTHER").collect() == []
    fail(session, "SHOW MODELS IN SCHEMA DB.NOPE", "Schema 'DB.NOPE' does not exist")


def test_aliases_follow_the_documented_rules(acct: OfflineAccount, session: Session) -> None:
    """An alias is unique in the model, a version has at most one, system alias names are refused."""
    for v in ("V1", "V2"):
        acct.models.add_version("churn", v)
    session.sql("ALTER MODEL churn VERSION V1 SET ALIAS = CHAMPION").collect()
    fail(session, "ALTER MODEL churn VERSION V2 SET ALIAS = CHAMPION", "Alias 'CHAMPION' already exists")
    fail(session, "ALTER MODEL churn VERSION V1 SET ALIAS = PROD", "already has the alias 'CHAMPION'")
    fail(session, "ALTER MODEL churn VERSION V2 SET ALIAS = LAST", "system alias")
    session.sql("ALTER MODEL churn VERSION CHAMPION UNSET ALIAS").collect()  # by alias name
    session.sql("ALTER MODEL churn VERSION V2 SET ALIAS = CHAMPION").collect()
    assert acct.models.champion("churn") == "V2"
    session.sql("ALTER MODEL churn VERSION V2 UNSET ALIAS").collect()  # by version name
    assert acct.models.champion("churn") is None
    fail(session, "ALTER MODEL churn VERSION CHAMPION UNSET ALIAS", "Alias 'CHAMPION' does not exist")


def test_the_default_version_cannot_be_dropped(acct: OfflineAccount, session: Session) -> None:
    for v in ("V1", "V2"):
        acct.models.add_version("churn", v)
    fail(session, "ALTER MODEL churn DROP VERSION V1", "Cannot drop the default version 'V1'")
    session.sql("ALTER MODEL churn SET DEFAULT_VERSION = V2").collect()
    session.sql("ALTER MODEL churn DROP VERSION V1").collect()
    assert list(acct.models.model("churn").versions) == ["V2"]
    fail(session, "ALTER MODEL churn SET DEFAULT_VERSION = V9", "version 'V9' does not exist")
    fail(session, "ALTER MODEL nope SET DEFAULT_VERSION = V2", "Model 'DB.S.NOPE' does not exist")
    session.sql("DROP MODEL churn").collect()
    assert acct.models.models == {}


def test_metadata_is_a_json_object(acct: OfflineAccount, session: Session) -> None:
    acct.models.add_version("churn", "V1")
    session.sql('ALTER MODEL churn MODIFY VERSION V1 SET METADATA=$${"metrics": {"auc": 0.9}}$$').collect()
    assert acct.models.model("churn").versions["V1"].metrics == {"auc": 0.9}
    fail(session, "ALTER MODEL churn MODIFY VERSION V1 SET METADATA=$$[1, 2]$$", "METADATA must be a JSON object")
    fail(session, "ALTER MODEL churn MODIFY VERSION V1 SET METADATA=$${nope$$", "Invalid METADATA")
    assert acct.models.model("churn").versions["V1"].metrics == {"auc": 0.9}  # a refused write changes nothing


def test_the_real_client_reads_the_store(acct: OfflineAccount, session: Session) -> None:
    """snowflake.ml opens a version only when SHOW VERSIONS' model_spec and SHOW FUNCTIONS agree."""
    from snowflake.ml.registry import Registry

    acct.models.add_version("churn", "V1", metrics={"auc": 0.8})
    acct.models.add_version("churn", "V2", metrics={"auc": 0.9})
    session.sql("ALTER MODEL churn VERSION V2 SET ALIAS = CHAMPION").collect()
    model = Registry(session=session).get_model("churn")
    assert model.version("CHAMPION").version_name == "V2" and model.default.version_name == "V1"
    assert model.version("champion").show_metrics() == {"auc": 0.9}  # aliases are identifiers
    assert [f["name"] for f in model.version("V1").show_functions()] == ["PREDICT"]
    with pytest.raises(ValueError, match="Unable to find version or alias"):
        model.version("V9")
    with pytest.raises(ValueError):
        Registry(session=session).get_model("nope")
