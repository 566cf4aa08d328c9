"""Where the pipeline runs: the embedded default (local) or a Snowflake account (snowflake)."""
