"""`modeldeck ingest` and `modeldeck check` against the world's database and store."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from sqlmodel import select
from typer.testing import CliRunner

from modeldeck.core.alerts.models import Alert, AlertStatus
from modeldeck.core.cli.main import app as cli_app
from tests.core.monitoring import synth
from tests.core.monitoring.conftest import World
from tests.core.monitoring.test_checksums import flip_file


@pytest.fixture
def config(tmp_path: Path, world: World) -> Path:
    settings = world.settings
    path = tmp_path / "modeldeck.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database_url": settings.database_url,
                "data_dir": settings.data_dir,
                "clusters": [c.model_dump(mode="json") for c in settings.clusters],
                "environments": [e.model_dump(mode="json") for e in settings.environments],
                "checks": {"min_rows": 30},
            }
        )
    )
    return path


def cli(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_app, ["--config", str(config), *args])
    return result.exit_code, result.stdout, result.stderr


def stored(world: World) -> list[Path]:
    return sorted(
        p for p in Path(world.settings.data_dir).rglob("*.parquet") if "reference" not in p.parts
    )


def test_ingest_files_then_check(config: Path, world: World, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    start = datetime.now(UTC) - timedelta(minutes=55)  # the CLI's clock is the real one
    batch = synth.predictions(
        600, 61, start, shift={"age": 1.5, "score_a": 1.0}, swap={"country", "channel"}
    )
    batch.to_parquet(tmp_path / "batch.parquet", index=False)
    code, out, err = cli(
        config,
        "ingest",
        str(tmp_path / "batch.parquet"),
        "--model",
        "fraud",
        "--version",
        "1.0.0",
        "--env",
        "prod",
    )
    assert code == 0, err
    assert "stored 600 predictions for fraud of 1.0.0 in production" in out
    synth.labels_for(batch, 3).to_csv(tmp_path / "labels.csv", index=False)
    code, out, err = cli(
        config, "ingest", str(tmp_path / "labels.csv"), "--kind", "labels", "--model", "fraud"
    )
    assert code == 0 and "stored 600 labels" in out, err
    code, out, err = cli(config, "check", "fraud", "--env", "production")
    assert code == 1, out + err  # 4 of 6 columns drifted: the drift check fails
    for word in ("drift", "quality", "decay", "fail", "fraud 1.0.0 in production"):
        assert word in out
    # A manual check goes through the scheduler's flow: its failure is alerted on.
    [alert] = world.session.exec(select(Alert).where(Alert.rule == "drift")).all()
    assert alert.status == AlertStatus.firing and "Data drift in fraud 1.0.0" in alert.summary
    code, out, err = cli(config, "--json", "check", "fraud", "--env", "prod", "--kind", "quality")
    body = json.loads(out)
    assert [r["kind"] for r in body] == ["quality"] and body[0]["rows"] == 600
    assert code == 0 and body[0]["status"] == "ok"


def test_reference_from_a_file(config: Path, tmp_path: Path) -> None:
    synth.reference(700, seed=6).to_csv(tmp_path / "ref.csv", index=False)
    code, out, err = cli(
        config,
        "ingest",
        str(tmp_path / "ref.csv"),
        "--kind",
        "reference",
        "--model",
        "fraud",
        "--version",
        "1.0.0",
    )
    assert code == 0, err
    assert "reference of fraud 1.0.0 set: 700 rows, 10 columns" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["ingest", "nope.csv", "--model", "fraud", "--version", "1.0.0", "--env", "prod"],
            2,
            "no such file",
        ),
        (["ingest", "BATCH", "--model", "fraud", "--env", "prod"], 2, "predictions need --version"),
        (["ingest", "BATCH", "--version", "1.0.0", "--env", "prod"], 2, "--model is required"),
        (
            ["ingest", "BAD", "--model", "fraud", "--version", "1.0.0", "--env", "prod"],
            2,
            "missing feature column(s) ['age']",
        ),
        (
            ["ingest", "CORRUPT", "--model", "fraud", "--version", "1.0.0", "--env", "prod"],
            2,
            "the file is corrupt: a page does not match its checksum",
        ),
        (
            ["ingest", "TXT", "--model", "fraud", "--version", "1.0.0", "--env", "prod"],
            2,
            "unknown file type .txt",
        ),
        (
            ["ingest", "BATCH", "--model", "fraud", "--version", "1.0.0", "--env", "moon"],
            1,
            "no environment named 'moon'",
        ),
        (["check", "fraud", "--env", "staging"], 1, "no active deployment in staging"),
        (["check", "ghost", "--env", "prod"], 1, "no model named 'ghost'"),
    ],
)
def test_refusals(
    config: Path, world: World, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    batch = synth.predictions(40, 62, world.window_start())
    batch.to_csv(tmp_path / "batch.csv", index=False)
    batch.drop(columns=["age"]).to_csv(tmp_path / "bad.csv", index=False)
    (tmp_path / "batch.txt").write_text("hello")
    corrupt = tmp_path / "corrupt.parquet"
    table = pa.Table.from_pandas(batch, preserve_index=False)
    pq.write_table(
        table, corrupt, compression="none", use_dictionary=False, write_page_checksum=True
    )
    flip_file(corrupt, "age")
    paths = {
        "CORRUPT": corrupt,
        "BATCH": tmp_path / "batch.csv",
        "BAD": tmp_path / "bad.csv",
        "TXT": tmp_path / "batch.txt",
    }
    exit_code, out, err = cli(config, *[str(paths.get(a, a)) for a in args])
    assert exit_code == code, out + err
    assert message in " ".join(err.split())
    assert stored(world) == []
