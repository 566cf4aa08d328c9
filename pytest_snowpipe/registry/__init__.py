"""Model registries (the local folder one) and the champion a gate compares against."""
