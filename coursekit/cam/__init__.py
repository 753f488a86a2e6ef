"""Notebook 03: class activation maps (torchcam) under imgaug transformations."""
