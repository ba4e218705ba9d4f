"""The demo world of DESIGN §7, built through the production services (see world.py).

`run` is what `modeldeck demo` calls; the modules: world (models and timeline), behaviours and
data (the synthetic generator), traffic (ingestion of it), seed and workers (the 90-day
replay), gpu (exporter, Prometheus and its backfill), live (traffic while the demo runs),
home (the .modeldeck folder) and runner (the processes).
"""

from __future__ import annotations

from modeldeck.core.demo.runner import run

__all__ = ["run"]
