"""The Parquet store under `settings.data_dir` (a local path or any fsspec URL).

Layout (hive-style partitions, readable by DuckDB/Spark/pyarrow as they are):

    predictions/model=M/version=V/environment=E/date=YYYY-MM-DD/part-<first>-<last>-<id>.parquet
    labels/model=M/date=YYYY-MM-DD/part-<first>-<last>-<id>.parquet      (date = arrival)
    reference/model=M/version=V/<sha256>.parquet
    reports/check-<id>.html

<first>/<last> are the batch's first and last timestamps, so a window read opens only the
files that overlap it. Every file is written under a hidden temporary name and renamed into
place once complete; readers list only `part-*.parquet`, so no half-written file is ever read.

A batch spanning several dates is one commit: its files carry the batch id
(`part-<first>-<last>-<file>-<batch>.parquet`) and count only once the marker
`<base>/_batches/<batch>` exists, which is written last. A reader between two renames, or
after a writer was killed, sees none of the batch; such leftovers (and stray `.tmp-` files)
are removed once older than an hour (`sweep`).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from modeldeck.core.errors import BackendUnavailable, InvalidInput
from modeldeck.core.monitoring import columns as C

_STAMP = "%Y%m%dT%H%M%S%f"
# Every Parquet file modeldeck writes carries a CRC per page and every read verifies it, so a
# damaged file (disk, copy, upload) is an error instead of silently different values. Files
# written without checksums (by older modeldeck, or most producers' defaults) cannot be
# verified and are read as before.
CHECKSUMS = {"write_page_checksum": True}
VERIFY = {"page_checksum_verification": True}
BATCHES = "_batches"  # commit markers of multi-file batches (hidden from hive readers)
LOCKS = ".locks"
ORPHAN_SECONDS = 3600.0  # an uncommitted file older than this belongs to a dead writer
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def utc_days(stamps: pa.ChunkedArray) -> pa.ChunkedArray:
    """The UTC date of each timestamp (a cast: ~30x faster than formatting strings)."""
    return pc.cast(stamps, pa.date32())


class Store:
    def __init__(self, data_dir: str) -> None:
        self.fs, root = fsspec.core.url_to_fs(data_dir)
        self.root = root.rstrip("/")
        self.local = isinstance(self.fs, LocalFileSystem)
        # pyarrow's own local filesystem is much faster than going through fsspec.
        self.arrow_fs: pafs.FileSystem = (
            pafs.LocalFileSystem() if self.local else pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))
        )

    # -- paths -------------------------------------------------------------------------------

    def predictions_dir(self, model: str, version: str, environment: str) -> str:
        return f"{self.root}/predictions/model={model}/version={version}/environment={environment}"

    def labels_dir(self, model: str) -> str:
        return f"{self.root}/labels/model={model}"

    def uri(self, path: str) -> str:
        return path if self.local else self.fs.unstrip_protocol(path)

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Serialise check-then-write (duplicate ids) per `key` (a model): across processes
        on a local store (flock on `<root>/.locks/<key>.lock`, so API workers and the CLI
        exclude each other), within this process otherwise (see ingest.model_lock)."""
        with _LOCKS_GUARD:
            lock = _LOCKS.setdefault(f"{self.root}|{key}", threading.Lock())
        with lock:
            if not self.local:
                yield
                return
            os.makedirs(f"{self.root}/{LOCKS}", exist_ok=True)
            fd = os.open(f"{self.root}/{LOCKS}/{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # released by close, even if the process dies
                yield
            finally:
                os.close(fd)

    def write_partitioned(self, base: str, table: pa.Table, time_column: str) -> list[str]:
        """Write `table` split by the UTC date of `time_column`; all files or none, for
        readers too (several dates: visible together once the batch marker is written)."""
        days = utc_days(table.column(time_column))
        unique = sorted(pc.unique(days).to_pylist())
        batch = f"-{uuid.uuid4().hex[:16]}" if len(unique) > 1 else ""
        staged: list[tuple[str, str]] = []
        try:
            for day in unique:
                directory = f"{base}/date={day}"
                self.sweep(directory)
                part = table.filter(pc.equal(days, pa.scalar(day, pa.date32())))
                span = pc.min_max(part.column(time_column))
                first, last = span["min"].as_py(), span["max"].as_py()
                name = f"part-{first:{_STAMP}}-{last:{_STAMP}}-{uuid.uuid4().hex[:12]}{batch}"
                staged.append(self._stage(directory, f"{name}.parquet", part))
            done = self._commit(staged)
        except BaseException:
            for tmp, _ in staged:
                self._remove(tmp)
            raise
        if batch:
            try:
                self.write_bytes(f"{base}/{BATCHES}/{batch[1:]}", b"")
            except BaseException:
                for path in done:
                    self._remove(path)
                raise
        return done

    def write_bytes(self, path: str, data: bytes) -> str:
        """Write a whole file atomically (temporary name, then rename)."""
        directory, _, name = path.rpartition("/")
        self.fs.makedirs(directory, exist_ok=True)
        tmp = f"{directory}/.tmp-{uuid.uuid4().hex}-{name}"
        with self.fs.open(tmp, "wb") as handle:
            handle.write(data)
        self.fs.mv(tmp, path)
        return path

    def _stage(self, directory: str, name: str, table: pa.Table) -> tuple[str, str]:
        self.fs.makedirs(directory, exist_ok=True)
        tmp = f"{directory}/.tmp-{name}"
        pq.write_table(table, tmp, filesystem=self.arrow_fs, compression="zstd", **CHECKSUMS)
        return tmp, f"{directory}/{name}"

    def _commit(self, staged: list[tuple[str, str]]) -> list[str]:
        done: list[str] = []
        try:
            for tmp, final in staged:
                self.fs.mv(tmp, final)
                done.append(final)
        except BaseException:
            for path in done:
                self._remove(path)
            raise
        return done

    def _remove(self, path: str) -> None:
        try:
            self.fs.rm(path)
        except FileNotFoundError:
            pass

    def sweep(self, directory: str, *, older_than: float = ORPHAN_SECONDS) -> list[str]:
        """Remove what dead writers left in one partition: `.tmp-` files and part files of
        batches never committed, once older than `older_than` seconds (a live writer is
        never that slow). Returns the removed paths."""
        try:
            entries = self.fs.ls(directory, detail=True)
        except FileNotFoundError:
            return []
        names = {str(e["name"]).rpartition("/")[2]: e for e in entries}
        tagged = [n for n in names if n.startswith("part-") and _batch_of(n)]
        committed = self._committed(directory) if tagged else set()
        removed = []
        for name, entry in names.items():
            orphan = name.startswith(".tmp-") or (
                name in tagged and _batch_of(name) not in committed
            )
            modified = _modified(entry)
            if orphan and modified is not None and time.time() - modified > older_than:
                self._remove(str(entry["name"]))
                removed.append(str(entry["name"]))
        return removed

    def _committed(self, directory: str) -> set[str]:
        """Committed batch ids of the base that holds the date partition `directory`."""
        base = directory.rstrip("/").rpartition("/")[0]
        try:
            entries = self.fs.ls(f"{base}/{BATCHES}", detail=False)
        except FileNotFoundError:
            return set()
        return {str(e).rstrip("/").rpartition("/")[2] for e in entries}

    # -- reading -----------------------------------------------------------------------------

    def day_dirs(self, base: str) -> list[tuple[date, str]]:
        """The date partitions under `base`, oldest first."""
        try:
            entries = self.fs.ls(base, detail=False)
        except FileNotFoundError:
            return []
        out = []
        for entry in entries:
            name = str(entry).rstrip("/").rpartition("/")[2]
            if name.startswith("date="):
                try:
                    out.append((date.fromisoformat(name[5:]), str(entry).rstrip("/")))
                except ValueError:
                    continue
        return sorted(out)

    def part_files(self, directory: str) -> list[tuple[datetime, datetime, str]]:
        """Committed files of one partition with the time span their name records (files
        of a multi-date batch only once its marker exists)."""
        try:
            entries = self.fs.ls(directory, detail=False)
        except FileNotFoundError:
            return []
        out = []
        committed: set[str] | None = None
        for entry in entries:
            name = str(entry).rpartition("/")[2]
            if not (name.startswith("part-") and name.endswith(".parquet")):
                continue
            pieces = name.split("-")
            try:
                first = datetime.strptime(pieces[1], _STAMP).replace(tzinfo=UTC)
                last = datetime.strptime(pieces[2], _STAMP).replace(tzinfo=UTC)
            except (IndexError, ValueError):
                continue
            batch = _batch_of(name)
            if batch:
                if committed is None:
                    committed = self._committed(directory)
                if batch not in committed:
                    continue
            out.append((first, last, str(entry)))
        return sorted(out)

    def read_file(
        self,
        path: str,
        columns: list[str] | None = None,
        span: tuple[datetime, datetime] | None = None,
    ) -> pa.Table:
        """A committed file, column by column (the decoding buffers of one column are reused
        for the next, so reading costs about the data's own size), optionally only the rows
        whose timestamp lies in `span` [start, end)."""
        try:
            with self.arrow_fs.open_input_file(path) as handle:
                parquet = pq.ParquetFile(handle, **VERIFY)
                names = columns or parquet.schema_arrow.names
                mask = None
                if span is not None:
                    stamps = parquet.read(columns=[C.TIMESTAMP]).column(0)
                    mask = pc.and_(
                        pc.greater_equal(stamps, pa.scalar(span[0], C.UTC_US)),
                        pc.less(stamps, pa.scalar(span[1], C.UTC_US)),
                    )
                arrays = {}
                for name in names:
                    column = parquet.read(columns=[name], use_threads=False).column(0)
                    arrays[name] = column.filter(mask) if mask is not None else column
                return pa.table(arrays)
        except (pa.ArrowInvalid, OSError) as exc:
            raise BackendUnavailable(f"cannot read {path}: {read_problem(exc)}") from exc

    def read_stored(self, uri: str) -> pa.Table:
        """A file this store wrote, by the URI it returned."""
        path = uri if self.local else fsspec.core.url_to_fs(uri)[1]
        return self.read_file(path)

    def read_window(
        self, base: str, start: datetime, end: datetime, columns: list[str] | None = None
    ) -> list[pa.Table]:
        """Rows of `base` with start <= timestamp < end, one table per file (files written
        under different references may differ in type; the caller conforms them)."""
        tables = []
        for day, directory in self.day_dirs(base):
            if day < start.date() or day > (end - timedelta(microseconds=1)).date():
                continue
            for first, last, path in self.part_files(directory):
                if last < start or first >= end:
                    continue
                inside = first >= start and last < end  # no filter: no copy of the file
                span = None if inside else (start, end)
                table = self.read_file(path, columns=columns, span=span)
                if table.num_rows:
                    tables.append(table)
        return tables

    def read_labels(self, model: str, since: date) -> pa.Table | None:
        """Labels that arrived on or after `since`, the latest per prediction id."""
        tables = [
            self.read_file(path)
            for day, directory in self.day_dirs(self.labels_dir(model))
            if day >= since
            for _, _, path in self.part_files(directory)
        ]
        if not tables:
            return None
        table = pa.concat_tables(tables, promote_options="permissive")
        order = pc.sort_indices(table, sort_keys=[(C.LABELLED_AT, "descending")])
        table = table.take(order)
        ids = table.column(C.PREDICTION_ID).to_pandas()
        first = ~ids.duplicated(keep="first").to_numpy()
        return table.filter(pa.array(first))

    def model_prediction_dirs(self, model: str) -> list[tuple[date, str]]:
        """Every date partition of a model (all versions and environments), newest first."""
        out: list[tuple[date, str]] = []
        for version in self._subdirs(f"{self.root}/predictions/model={model}"):
            for env in self._subdirs(version):
                out.extend(self.day_dirs(env))
        return sorted(out, reverse=True)

    def _subdirs(self, path: str) -> list[str]:
        try:
            return [
                str(e).rstrip("/")
                for e in self.fs.ls(path, detail=False)
                if "=" in str(e).rstrip("/").rpartition("/")[2]
            ]
        except FileNotFoundError:
            return []

    def stored_ids(self, directories: list[str], wanted: pa.Array) -> pa.Array:
        """Which of `wanted` already appear in the prediction files under `directories`."""
        found: list[pa.Array] = []
        for directory in directories:
            for _, _, path in self.part_files(directory):
                ids = self.read_file(path, columns=[C.PREDICTION_ID]).column(C.PREDICTION_ID)
                hits = pc.filter(wanted, pc.is_in(wanted, value_set=ids.combine_chunks()))
                if len(hits):
                    found.append(hits)
        if not found:
            return pa.array([], pa.string())
        return pc.unique(pa.concat_arrays(found))

    def read_uri(self, uri: str) -> pa.Table:
        """A reference data set from any fsspec URL (Parquet, CSV or Arrow/Feather file)."""
        import pyarrow.csv as pacsv
        import pyarrow.feather as feather

        try:
            fs, path = fsspec.core.url_to_fs(uri)
            with fs.open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise InvalidInput(f"reference data not found at {uri}") from None
        except Exception as exc:  # any transport failure of an fsspec backend
            raise BackendUnavailable(f"cannot read reference data {uri}: {exc}") from exc
        buffer = pa.BufferReader(data)
        try:
            if path.endswith(".csv") or path.endswith(".csv.gz"):
                return pacsv.read_csv(buffer)
            if path.endswith((".arrow", ".feather", ".ipc")):
                return feather.read_table(buffer)
            return pq.read_table(buffer, **VERIFY)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(
                f"reference data at {uri} is not readable: {read_problem(exc)}"
            ) from None


def read_problem(exc: Exception) -> str:
    """What went wrong reading a file, a failed page checksum said plainly."""
    text = str(exc)
    if "checksum verification failed" in text.lower():
        return f"the file is corrupt: a page does not match its checksum ({text})"
    return text


def _batch_of(name: str) -> str:
    """The batch id of a multi-date batch's file (`part-<first>-<last>-<file>-<batch>`)."""
    pieces = name.removesuffix(".parquet").split("-")
    return pieces[4] if len(pieces) == 5 else ""


def _modified(entry: dict[str, Any]) -> float | None:
    """A listing entry's modification time (epoch seconds), however the backend names it."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = entry.get(key)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None
