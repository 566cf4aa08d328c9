"""The embedded SQL engine: fakesnow's HTTP server (DuckDB) in a thread, and what closes its gaps.

Real Snowpark and the real connector talk to it over HTTP; only the server is a double.
"""
