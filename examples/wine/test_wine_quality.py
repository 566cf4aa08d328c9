"""A multi-class gate: an absolute macro-F1 bar, no cultivar left behind, no regression."""
import pytest

import pytest_snowpipe as sp


@pytest.mark.snowpipe_gate(on_pass="promote", on_fail="alert")
def test_wine_model_quality(wine_metrics, snowpipe_config, snowpipe_champion):
    sp.assert_metric(wine_metrics, "macro_f1", ge=snowpipe_config["wine_metric_threshold"])
    sp.assert_metric(wine_metrics, "min_class_recall", ge=0.75)
    sp.assert_no_regression(wine_metrics, snowpipe_champion, "macro_f1", tolerance=0.01)


def test_split_has_every_class(wine_split):
    assert set(wine_split["train"]["CULTIVAR"]) == {0, 1, 2}
