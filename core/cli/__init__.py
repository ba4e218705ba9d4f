"""The `modeldeck` command line (Typer). main.py gathers one module per domain."""
