"""Environments (staging, production, ...) and the clusters they run on, from config."""
