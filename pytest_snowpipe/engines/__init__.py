"""Where the pipeline runs: the embedded default, a real Snowflake connection, and the
fresh process that stands in for an ML Job compute pool.
"""
