"""What no notebook imports: the `coursekit` command, its notebook runner, run folders,
OAR job scripts and multi-process Optuna sweeps."""
