"""Parquet page checksums: a corrupt but well-formed file is an error, never other numbers.

Flipping one byte inside a page leaves a file Parquet readers decode without complaint (the
values simply change); only a page's CRC tells. modeldeck writes a CRC into every page it
stores and verifies pages on every read, uploads included."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.engine import Engine

from modeldeck.core.api.app import create_app
from modeldeck.core.auth import service as auth
from modeldeck.core.auth.models import Role
from modeldeck.core.monitoring import frames, service
from modeldeck.core.monitoring.models import CheckKind, CheckStatus
from tests.core.monitoring import synth
from tests.core.monitoring.conftest import World
from tests.utils.servers import serve_asgi

TARGET = {"model": "fraud", "version": "1.0.0", "environment": "production"}


def flip_in_page(data: bytes, column: str) -> bytes:
    """`data` with one bit flipped in the middle of `column`'s first page (its dictionary
    page when it has one): past the page header, inside the values."""
    meta = pq.ParquetFile(pa.BufferReader(data)).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    chunk = meta.row_group(0).column(names.index(column))
    first = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    end = (
        chunk.data_page_offset if chunk.has_dictionary_page else first + chunk.total_compressed_size
    )
    bad = bytearray(data)
    bad[(first + end) // 2] ^= 0x01
    return bytes(bad)


def flip_file(path: Path, column: str) -> None:
    path.write_bytes(flip_in_page(path.read_bytes(), column))


def stored_predictions(world: World) -> list[Path]:
    return sorted((Path(world.settings.data_dir) / "predictions").rglob("part-*.parquet"))


def test_a_corrupt_checksummed_upload_is_422_over_real_http_and_stores_nothing(
    world: World, engine: Engine
) -> None:
    batch = synth.predictions(500, 3, world.window_start())
    table = pa.Table.from_pandas(batch, preserve_index=False)
    sink = io.BytesIO()
    # Plain, uncompressed doubles: a flipped bit is a different number, nothing else notices.
    pq.write_table(table, sink, compression="none", use_dictionary=False, write_page_checksum=True)
    corrupt = flip_in_page(sink.getvalue(), "age")
    assert not pq.read_table(pa.BufferReader(corrupt)).equals(table)  # silent without the CRC
    token = auth.create_token(world.session, name="d", role=Role.deployer, actor=world.admin)
    app = create_app(world.settings, engine=engine, clock=world.clock)
    with serve_asgi(app) as base:
        answer = httpx.post(
            f"{base}/api/v1/predictions",
            params=TARGET,
            content=corrupt,
            headers={
                "Content-Type": "application/vnd.apache.parquet",
                "Authorization": f"Bearer {token.token}",
            },
            timeout=30,
        )
    assert answer.status_code == 422, answer.text
    detail = str(answer.json())
    assert "the upload is not a readable Parquet file" in detail
    assert "the file is corrupt: a page does not match its checksum" in detail
    assert "send it again from its source" in detail
    assert stored_predictions(world) == []


def test_a_flipped_byte_in_a_stored_file_makes_the_checks_error(world: World) -> None:
    world.ingest(synth.predictions(500, 4, world.window_start()))
    [path] = stored_predictions(world)
    flip_file(path, "age")
    results = service.run_checks(
        world.session,
        settings=world.settings,
        deployment_id=world.deployment_id,
        clock=world.clock,
    )
    for result in results:
        assert result.status == CheckStatus.error, (result.kind, result.message)
        assert "the file is corrupt: a page does not match its checksum" in result.message
        assert str(path) in result.details["error"]


def test_a_flipped_byte_in_the_stored_reference_makes_drift_error(world: World) -> None:
    world.ingest(synth.predictions(500, 5, world.window_start()))
    [reference] = (Path(world.settings.data_dir) / "reference").rglob("*.parquet")
    flip_file(reference, "amount")
    result = service.run_check(
        world.session,
        settings=world.settings,
        deployment_id=world.deployment_id,
        kind=CheckKind.drift,
        clock=world.clock,
    )
    assert result.status == CheckStatus.error
    assert "a page does not match its checksum" in result.message


def test_files_written_without_checksums_are_read_as_before(world: World) -> None:
    """Most producers write no page CRC: such uploads cannot be verified, and still work."""
    batch = synth.predictions(200, 6, world.window_start())
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(batch, preserve_index=False), sink)
    table = frames.read_upload(sink.getvalue(), "application/vnd.apache.parquet")
    assert world.ingest(table).rows == 200
    [path] = stored_predictions(world)
    assert pd.read_parquet(path)["age"].tolist() == batch["age"].tolist()
