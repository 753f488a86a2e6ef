"""One module per notebook experiment: a config dataclass and a `run(config)` that trains it."""
