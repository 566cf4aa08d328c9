"""``doubles/environment.py``: the files a task's declared packages give it (issue 27, mutants)."""
from __future__ import annotations

import pytest
from packaging.requirements import Requirement

from pytest_snowpipe.doubles.environment import _closure


@pytest.mark.parametrize(
    "roots",
    [
        ["snowflake-snowpark-python[pandas]", "snowflake-snowpark-python"],  # the plain one is met first
        ["snowflake-snowpark-python", "snowflake-snowpark-python[pandas]"],
    ],
)
def test_extras_asked_for_after_the_distribution_was_seen_are_kept(roots):
    assert "pandas" not in _closure([Requirement("snowflake-snowpark-python")])[0]  # pandas comes with the extra
    seen, missing = _closure([Requirement(r) for r in roots])
    assert "pandas" in seen and "snowflake-snowpark-python" in seen
    assert missing == []


def test_the_files_of_every_installed_distribution_are_those_importlib_lists() -> None:
    """RECORD read directly gives exactly ``Distribution.files``, located: for every distribution
    installed here (wheels, this editable install, anything without a RECORD)."""
    import os
    from importlib import metadata

    from pytest_snowpipe.doubles.environment import _files_of

    checked = 0
    for dist in metadata.distributions():
        expected = [os.path.normpath(str(dist.locate_file(f))) for f in dist.files or []]
        assert sorted(_files_of(dist)) == sorted(expected), dist.metadata["Name"]
        checked += bool(expected)
    assert checked > 20
