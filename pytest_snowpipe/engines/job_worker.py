"""Entry point of the fresh process a remote stage runs in: load, call, store the result."""
from __future__ import annotations

import sys
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    """``python -m pytest_snowpipe.engines.job_worker PAYLOAD RESULT``."""
    import cloudpickle

    inp, out = Path(argv[0]), Path(argv[1])
    func, arguments = cloudpickle.loads(inp.read_bytes())
    stage = getattr(func, "__name__", "?")
    try:
        result = func(**arguments)
    except BaseException as exc:  # report every failure to the parent, which re-raises it
        tb = traceback.format_exc()
        try:
            blob = cloudpickle.dumps((False, exc, tb))
        except Exception:
            blob = cloudpickle.dumps((False, None, tb))
        out.write_bytes(blob)
        return 1
    try:
        blob = cloudpickle.dumps((True, result, ""))
    except Exception as exc:
        msg = (
            f"remote stage {stage!r}: its return value ({type(result).__name__}) cannot make the "
            f"trip back from the compute pool: {type(exc).__name__}: {exc}. Return data or a model "
            "object that pickles."
        )
        out.write_bytes(cloudpickle.dumps((False, None, msg)))
        return 1
    out.write_bytes(blob)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
