"""Promote, roll back, approve; the full deployment history."""
