"""Models and their versions, with lineage."""
