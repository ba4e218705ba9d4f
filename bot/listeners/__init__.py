"""Listeners grouped by kind; each module exposes register(app), wired in bot/app.py."""
