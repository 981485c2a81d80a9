"""Datasets as fixed, seeded, disjoint train/val/test splits.

The test split is held out: search and model selection use `val` only; `test` is for the final report.
"""

from crossnas.data.loaders import DataSplits, list_datasets, load_dataset, read_idx

__all__ = ["DataSplits", "list_datasets", "load_dataset", "read_idx"]
