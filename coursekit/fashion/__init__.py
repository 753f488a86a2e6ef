"""Notebook 05: FashionMNIST LeNet-5, regularization, schedules and Optuna."""
