"""What stands in for Snowflake, so that a run, a rehearsal and the tests need no account.

``sql/`` is the embedded SQL engine (fakesnow's server over DuckDB, plus our adapter): the default
session of every local run, so it sits at the bottom of the layers. The rest stands in for the
account a deploy talks to and reads what ``taskgraph/`` compiles, so it sits above it: the offline
account (the wire a deploy speaks), the shipped bytes it captures, the environment and sandbox a
shipped procedure runs in, the emulator that runs a graph with Task Graph semantics, and the
traffic recorder the tests use to hold the offline account to the real client's calls.
"""
