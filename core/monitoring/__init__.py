"""Prediction and label ingestion; drift, data-quality and decay checks."""
