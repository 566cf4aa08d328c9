"""Quality gates of the mortgage pipeline: assertions decide promote vs. alert."""
import pytest


@pytest.mark.snowpipe_gate(on_pass="promote", on_fail="alert", model_name="mortgage_model")
def test_model_quality(metrics, snowpipe_config):
    metric = snowpipe_config["metric_name"]
    assert metrics[metric] >= snowpipe_config["metric_threshold"], (
        f"{metric}={metrics[metric]:.3f} is below the threshold {snowpipe_config['metric_threshold']}"
    )


def test_split_keeps_every_row(split, loans):
    """An ordinary test beside the gate: no row lost or duplicated by the split."""
    assert split["train"].count() + split["test"].count() == loans.count()
