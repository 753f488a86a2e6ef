"""Notebook 07: HungarianNet, assignment data, models, metrics and the tracked ablation."""
