"""Top-level conftest: the plugin's own tests drive real pytest sessions with pytester."""
pytest_plugins = ["pytester"]
