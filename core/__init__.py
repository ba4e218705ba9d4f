"""modeldeck core: registry, rollouts, monitoring, hardware and alerts behind one service layer."""

__version__ = "0.1.0"
