"""Price per GPU-hour of a GPU model as DCGM names it ("NVIDIA A100-SXM4-80GB" → "A100")."""

from __future__ import annotations

import re

from modeldeck.core.config import Settings


def price_key(gpu_model: str, prices: dict[str, float]) -> str | None:
    """The configured price whose name appears in the DCGM model name as a whole token;
    the longest wins, so "L40S" is not priced as "L4"."""
    best: str | None = None
    for key in prices:
        if re.search(
            rf"(?<![A-Za-z0-9]){re.escape(key)}(?![A-Za-z0-9])", gpu_model, re.IGNORECASE
        ) and (best is None or len(key) > len(best)):
            best = key
    return best


def price_for(settings: Settings, gpu_model: str) -> float | None:
    key = price_key(gpu_model, settings.gpu_cost_per_hour)
    return settings.gpu_cost_per_hour[key] if key else None


def short_name(settings: Settings, gpu_model: str) -> str:
    """'A100' for 'NVIDIA A100-SXM4-80GB' when priced; the DCGM name otherwise."""
    return price_key(gpu_model, settings.gpu_cost_per_hour) or gpu_model or "unknown"
