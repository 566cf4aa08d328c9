"""The seed quickstart (sf-samples ml_jobs/e2e_task_graph) as one suite: pipeline_dag.py and
pipeline_local.py, one to one. Small pandas data so it runs in seconds on the embedded default."""
import pandas as pd
import pytest

import pytest_snowpipe as sp

DB_NAME, SCHEMA_NAME = "SNOWBANK", "DEV"
COMPUTE_POOL, JOB_STAGE = "DEMO_POOL", f"@{DB_NAME}.{SCHEMA_NAME}.JOB_STAGE"


@pytest.fixture(scope="session")
@sp.source(table="{data_table}")
def prepare_data(snowpipe_config, snowpipe_registry):  # PREPARE_DATA; the teardown is cleanup_task
    rows = [(i, float(i % 7), int(i % 3 == 0)) for i in range(60)]
    frame = pd.DataFrame(rows, columns=["LOAN_ID", "INCOME", "APPROVED"])
    yield {"train": frame.iloc[:45], "test": frame.iloc[45:], "dataset": snowpipe_config["dataset_name"]}
    snowpipe_registry.prune(snowpipe_config["model_name"], keep=3)  # modeling.clean_up


@pytest.fixture(scope="session")
@sp.remote(COMPUTE_POOL, stage_name=JOB_STAGE, database=DB_NAME, schema=SCHEMA_NAME, target_instances=2)
def train_model(prepare_data):  # TRAIN_MODEL: an ML Job
    train = prepare_data["train"]
    return {"threshold": float(train["INCOME"].mean())}


@pytest.fixture(scope="session")
def metrics(train_model, prepare_data):  # modeling.evaluate_model, train and test
    out = {}
    for split in ("train", "test"):
        frame = prepare_data[split]
        pred = (frame["INCOME"] < train_model["threshold"]).astype(int)
        out[f"{split}_accuracy"] = float((pred == frame["APPROVED"]).mean())
    return out
