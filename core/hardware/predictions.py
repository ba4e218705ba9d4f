"""Predictions each model version served in an environment over a range, counted from the
monitoring Parquet store: the denominator of "cost per 1k predictions" (report, API, CLI,
dashboard)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa

from modeldeck.core.config import Settings
from modeldeck.core.timeseries import to_utc


def prediction_counts(
    settings: Settings,
    start: datetime,
    end: datetime,
    keys: list[tuple[str, str, str | None]],
    max_files: int = 3000,
) -> dict[tuple[str, str, str | None], int]:
    """Predictions each (model, version, environment) served in [start, end), counted from the
    Parquet store: whole files by their metadata, the two edge files by their timestamps.
    Keys whose files exceed `max_files` in total are left out (cost per 1k unknown)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from modeldeck.core.monitoring import columns as C
    from modeldeck.core.monitoring.store import Store

    store = Store(settings.data_dir)
    start, end = to_utc(start), to_utc(end)
    budget = max_files
    out: dict[tuple[str, str, str | None], int] = {}
    for model, version, env in keys:
        if env is None:
            continue
        total = 0
        base = store.predictions_dir(model, version, env)
        for day, directory in store.day_dirs(base):
            if day < start.date() or day > (end - timedelta(microseconds=1)).date():
                continue
            for first, last, path in store.part_files(directory):
                if last < start or first >= end:
                    continue
                budget -= 1
                if budget < 0:
                    return out
                if first >= start and last < end:
                    with store.arrow_fs.open_input_file(path) as handle:
                        total += pq.ParquetFile(handle).metadata.num_rows
                else:
                    stamps = store.read_file(path, columns=[C.TIMESTAMP]).column(0)
                    inside = pc.and_(
                        pc.greater_equal(stamps, pa.scalar(start, C.UTC_US)),
                        pc.less(stamps, pa.scalar(end, C.UTC_US)),
                    )
                    total += int(pc.sum(inside).as_py() or 0)
        out[(model, version, env)] = total
    return out
