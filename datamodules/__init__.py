"""LightningDataModules, the dataset registry, splits, normalization and the device batch loader."""
