"""Notebook 06: simulated balls, colour detection, boxes and position forecasting."""
