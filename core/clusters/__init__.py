"""Cluster backends behind one Protocol: kubernetes (Deployment), kserve, simulated."""
