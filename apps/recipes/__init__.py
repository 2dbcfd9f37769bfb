"""Recipes: train and evaluate on a dataset and write a run directory (called by the CLI and the examples)."""
