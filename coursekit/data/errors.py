"""Errors raised by coursekit's data loading, each with a message that says how to fix it."""

from __future__ import annotations


class DatasetMissingError(FileNotFoundError):
    """A dataset's files are not where coursekit looked, and could not be downloaded."""


class ChecksumError(ValueError):
    """A dataset file exists but its md5 is not the one of the original file."""


class DatasetFormatError(ValueError):
    """A dataset file exists but is not in the expected format (bad header, truncated...)."""
