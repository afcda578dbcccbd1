"""Every command: the console scripts (pyproject.toml) and the `python -m` entries, each a
thin shell over the package's functions."""
