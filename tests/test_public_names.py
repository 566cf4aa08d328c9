"""The package's public names are discoverable: dir(), help() and __all__ agree, at no import cost."""
from __future__ import annotations

import subprocess
import sys


def test_dir_lists_every_public_name_without_importing_them():
    code = (
        "import sys, pytest_snowpipe as sp\n"
        "names = [n for n in dir(sp) if not n.startswith('_')]\n"
        "assert sorted(names) == sorted(n for n in sp.__all__ if not n.startswith('_')), names\n"
        "assert 'snowflake.snowpark' not in sys.modules and 'hypothesis' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_help_documents_the_public_api():
    import pydoc

    import pytest_snowpipe

    text = pydoc.render_doc(pytest_snowpipe, renderer=pydoc.plaintext)
    for shown in ("class Contract", "class ContractViolation", "assert_metric(", "remote(", "expect("):
        assert shown in text, shown
