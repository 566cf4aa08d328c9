"""One local run of the pipeline: its state, the stage cache (store and use in a run) and
the built-in actions a gate leads to.
"""
