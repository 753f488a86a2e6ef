"""Notebook 04: CIFAR-10 networks under 250,000 parameters, operation counts, time budgets."""
