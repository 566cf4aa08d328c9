"""Quality gates of the mortgage pipeline: assertions decide promote vs. alert."""
import pytest

import pytest_snowpipe as sp


@pytest.mark.snowpipe_gate(on_pass="promote", on_fail="alert", model_name="mortgage_model")
def test_model_quality(metrics, snowpipe_config, snowpipe_champion):
    """An absolute bar and no regression against the model in production, in one comparison.

    ``snowpipe_champion`` is the registry's current default of mortgage_model (None on the
    first run, which then only has to clear the bar); the report shows both checks.
    """
    sp.assert_metric(
        metrics,
        snowpipe_config["metric_name"],
        ge=snowpipe_config["metric_threshold"],
        champion=snowpipe_champion,
        tolerance=0.01,
    )


def test_split_keeps_every_row(split, loans):
    """An ordinary test beside the gate: no row lost or duplicated by the split."""
    assert split["train"].count() + split["test"].count() == loans.count()
