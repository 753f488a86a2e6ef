"""The notebooks here are inputs of the batch-run tests, not workbook notebooks for nbval."""

collect_ignore_glob = ["*.ipynb"]
