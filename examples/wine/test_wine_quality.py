"""A multi-class gate: an absolute macro-F1 bar and no cultivar left behind."""
import pytest


@pytest.mark.snowpipe_gate(on_pass="promote", on_fail="alert")
def test_wine_model_quality(wine_metrics, snowpipe_config):
    assert wine_metrics["macro_f1"] >= snowpipe_config["wine_metric_threshold"]
    assert wine_metrics["min_class_recall"] >= 0.75, "one cultivar is poorly recognised"


def test_split_has_every_class(wine_split):
    assert set(wine_split["train"]["CULTIVAR"]) == {0, 1, 2}
