"""Notebook 01: MNIST loss curves, train/test swap, dropout on/off."""
