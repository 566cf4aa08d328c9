"""What the user wrote, read from pytest: the stage graph, gate markers, code dependencies,
sources, config, checks and the kinds of frames stages hand each other.

Nothing here runs a pipeline: local/ and taskgraph/ build on this package, never the reverse.
"""
