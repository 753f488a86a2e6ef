"""Shared model tools: parameter counts and statistics (`measure`), layer tables and
operation counts (`layers`). Each exercise's networks live in its own folder."""

from coursekit.models.measure import count_parameters

__all__ = ["count_parameters"]
