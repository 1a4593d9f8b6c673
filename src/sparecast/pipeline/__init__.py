"""Pipeline: the plain steps the CLI runs (scheduled flows wrap the same steps)."""
