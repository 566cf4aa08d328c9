import pytest


# check_model_quality (DAGTaskBranch) -> promote_model | send_alert
@pytest.mark.snowpipe_gate(
    on_pass="promote", on_fail="alert", model="train_model", model_name="{model_name}",
    version_name="v{run_scheduled:%Y%m%d_%H%M%S}",
    log_model={"comment": "threshold model for predicting loan approval likelihood.",
               "target_platforms": ["WAREHOUSE", "SNOWPARK_CONTAINER_SERVICES"],
               "options": {"enable_explainability": False}, "sample_input_data": "prepare_data.train"},
)
def check_model_quality(metrics, snowpipe_config):
    assert metrics[snowpipe_config["metric_name"]] >= snowpipe_config["metric_threshold"]
