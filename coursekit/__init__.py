"""coursekit: models, data, training loops and plots for the deep-learning practicals."""

__version__ = "0.1.0"
