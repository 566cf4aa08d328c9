"""Shared helpers: small pipeline suites written into a pytester directory."""
from __future__ import annotations

import json
import os
import textwrap

import pytest

# Import the heavy libraries once, before any inline pytester run: pytester restores
# sys.modules after each inline run, and re-importing Snowpark's protobuf-backed AST
# module in the same process segfaults.
import snowflake.core.task.dagv1
import snowflake.snowpark
import snowflake.snowpark.functions  # noqa: F401

# The embedded engine's modules too: an inline run that imported them anew would start a second
# server beside the first (module state), and pytester would drop them again after the run.
import pytest_snowpipe.doubles.sql.embedded
import pytest_snowpipe.doubles.sql.fakesnow_adapter
import pytest_snowpipe.doubles.sql.wire

collect_ignore = ["seed_suite"]  # a suite of its own (its pytest.ini), run by test_seed_suite.py in pytester

PURE_STAGES = '''
import pytest

@pytest.fixture(scope="session")
def raw():
    return [1, 2, 3, 4]

@pytest.fixture(scope="session")
def model(raw):
    return {"weights": sum(raw)}

@pytest.fixture(scope="session")
def metrics(model, snowpipe_config):
    return {"score": model["weights"] / 10}
'''

GATE = '''
import pytest

@pytest.mark.snowpipe_gate(on_pass="promote", on_fail="alert")
def test_gate(metrics, snowpipe_config):
    assert metrics["score"] >= snowpipe_config["threshold"], "score below threshold"
'''

INI = """
[pytest]
snowpipe_config =
    threshold = 0.5
    label = demo
"""


def connections_home(folder, params, name="offline"):
    """``folder`` as a ``SNOWFLAKE_HOME`` whose connections.toml names ``params`` (an offline account's
    connection) ``name``, readable by its owner only, as the connector wants it."""
    toml = folder / "connections.toml"
    # JSON's strings, numbers and booleans are TOML's too
    toml.write_text(f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in params.items()))
    os.chmod(toml, 0o600)
    return folder


@pytest.fixture
def pipeline_suite(pytester: pytest.Pytester):
    """Write a tiny pure-Python pipeline (no Snowpark) and return the pytester."""

    def write(conftest: str = PURE_STAGES, gate: str = GATE, ini: str = INI) -> pytest.Pytester:
        pytester.makeini(textwrap.dedent(ini))
        pytester.makeconftest(textwrap.dedent(conftest))
        pytester.makepyfile(test_gate=textwrap.dedent(gate))
        return pytester

    return write


@pytest.fixture(scope="session")
def embedded_session():
    """One Snowpark session on this process's embedded engine, shared by the tests that need one."""
    session = pytest_snowpipe.doubles.sql.embedded.create_embedded_session()
    yield session
    session.close()


@pytest.fixture(scope="session", autouse=True)
def _engine_started_and_exercised(embedded_session):
    """Start this process's engine before any inline pytester run, and take every path once.

    An inline run restores ``sys.modules`` afterwards: a module it imported first (Snowpark's
    lazily loaded pieces, the connector's pandas tools, the server's) would be imported again by
    a later test, and re-importing Snowpark's native-backed modules in one process can crash it.
    Importing them here, once, keeps them. An engine already running also stays the outer run's:
    inline runs never start or stop one.
    """
    import io

    import pandas as pd
    from snowflake.snowpark.context import get_active_session  # noqa: F401

    frame = embedded_session.create_dataframe(pd.DataFrame({"A": [1, 2, None], "S": ["x", None, "z"]}))
    part, _ = frame.random_split([0.5, 0.5], seed=1)
    part.union_all(frame).cache_result().to_pandas()
    embedded_session.sql("CREATE STAGE IF NOT EXISTS SNOWPIPE_WARMUP").collect()
    # a name of this process's own: get_stream downloads to <tempdir>/<name>, which the xdist
    # workers share (two workers' downloads of one name broke each other's set-up)
    name = f"@SNOWPIPE_WARMUP/warmup-{os.getpid()}.bin"
    embedded_session.file.put_stream(io.BytesIO(b"x"), name, auto_compress=False, overwrite=True)
    with embedded_session.file.get_stream(name) as stream:
        stream.read()
