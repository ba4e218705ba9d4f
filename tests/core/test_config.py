from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from modeldeck.core.config import BackendKind, Settings, config_path, load_settings
from modeldeck.core.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "deploy" / "modeldeck.example.yaml"

GOOD = """
clusters:
  - name: gpu-a
    backend: simulated
environments:
  - name: staging
    cluster: gpu-a
slack:
  alert_channel: C1
api:
  port: 8100
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No MODELDECK_* variable of the developer's shell leaks in; no ./modeldeck.yaml found."""
    for key in list(os.environ):
        if key.upper().startswith("MODELDECK_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "modeldeck.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(path: Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


# --- the example --------------------------------------------------------------------------


def test_example_config_loads_with_every_section() -> None:
    settings = load_settings(EXAMPLE)
    raw = yaml.safe_load(EXAMPLE.read_text())
    assert set(Settings.model_fields) <= set(raw), "document every section in the example"
    backends = {c.backend for c in settings.clusters}
    assert {BackendKind.kubernetes, BackendKind.kserve} <= backends
    assert {e.name for e in settings.environments} >= {"staging", "production"}
    assert settings.roles.slack_users and settings.roles.default == "viewer"
    assert settings.model_checks and settings.gpu_cost_per_hour["A100"] > 0
    assert settings.prometheus.url and settings.slack.alert_channel
    # No secret in the example: those come from the environment.
    assert settings.slack.bot_token is None and settings.prometheus.bearer_token is None


def test_every_example_section_has_a_comment() -> None:
    lines = EXAMPLE.read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        key = re.match(r"^([a-z_]+):\s*(#.*)?$", line)  # a section: its value is below
        if not key or key.group(2):
            continue
        above = next((prev for prev in reversed(lines[:i]) if prev.strip()), "")
        if not above.lstrip().startswith("#"):
            undocumented.append(key.group(1))
    assert not undocumented


def test_example_model_checks_merge_over_the_defaults() -> None:
    settings = load_settings(EXAMPLE)
    fraud = settings.check_config("fraud-detector")
    assert fraud.interval_minutes == 5 and fraud.drift_share == 0.3
    assert fraud.window_minutes == settings.checks.window_minutes  # not overridden
    assert settings.check_config("unknown-model") == settings.checks


# --- where the file comes from --------------------------------------------------------------


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert config_path() is None
    demo = tmp_path / ".modeldeck" / "modeldeck.yaml"
    demo.parent.mkdir()
    demo.write_text("log_level: DEBUG\n")
    assert config_path() == Path(".modeldeck/modeldeck.yaml")
    write(tmp_path, "log_level: WARNING\n")
    assert load_settings().log_level == "WARNING"  # ./modeldeck.yaml beats the demo's
    other = write(tmp_path, "log_level: ERROR\n", "other.yaml")
    monkeypatch.setenv("MODELDECK_CONFIG", str(other))
    assert load_settings().log_level == "ERROR"
    explicit = write(tmp_path, "log_level: CRITICAL\n", "explicit.yaml")
    assert load_settings(explicit).log_level == "CRITICAL"


def test_no_file_means_defaults() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///./.modeldeck/modeldeck.db"
    assert settings.environments == [] and settings.api.max_body_bytes > 0


# --- the environment ------------------------------------------------------------------------


def test_environment_wins_and_nests_with_double_underscore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, GOOD)
    monkeypatch.setenv("MODELDECK_SLACK__BOT_TOKEN", "xoxb-secret-value")
    monkeypatch.setenv("MODELDECK_API__PORT", "9001")
    monkeypatch.setenv("MODELDECK_DATABASE_URL", "postgresql://u@db/modeldeck")
    settings = load_settings(path)
    assert settings.api.port == 9001  # env beats the file's 8100
    assert settings.slack.bot_token is not None
    assert settings.slack.bot_token.get_secret_value() == "xoxb-secret-value"
    assert settings.slack.alert_channel == "C1"  # merged with the file, not replaced
    assert settings.database_url == "postgresql://u@db/modeldeck"
    assert settings.slack.enabled


def test_other_modeldeck_variables_do_not_trip_extra_forbid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, GOOD)
    monkeypatch.setenv("MODELDECK_CONFIG", str(path))
    monkeypatch.setenv("MODELDECK_USER", "alice")
    monkeypatch.setenv("MODELDECK_TEST_POSTGRES_URL", "postgresql://x@y/z")
    monkeypatch.setenv("MODELDECK_SOMETHING_ELSE", "1")
    settings = load_settings()
    assert settings.api.port == 8100


def test_secrets_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELDECK_SLACK__BOT_TOKEN", "xoxb-very-secret")
    monkeypatch.setenv("MODELDECK_PROMETHEUS__BEARER_TOKEN", "prom-very-secret")
    settings = load_settings()
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert "very-secret" not in shown


def test_bad_environment_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, GOOD)
    monkeypatch.setenv("MODELDECK_API__PORT", "eighty")
    message = config_error(path)
    assert message.startswith("environment variable MODELDECK_API__PORT: api.port:")
    assert "valid integer" in message
    monkeypatch.delenv("MODELDECK_API__PORT")
    monkeypatch.setenv("MODELDECK_SLACK__BOTTOKEN", "typo")
    assert "MODELDECK_SLACK__BOTTOKEN: slack.bottoken: unknown key" in config_error(path)


# --- bad files: one clear line naming the file and the key ----------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("databse_url: sqlite://\n", "{file}: databse_url: unknown key"),
        ("api:\n  prot: 80\n", "{file}: api.prot: unknown key"),
        (
            "clusters:\n  - name: a\n    gpu_modle: L4\n",
            "{file}: clusters[a].gpu_modle: unknown key",
        ),
        ("api:\n  port: eighty\n", "{file}: api.port: Input should be a valid integer"),
        ("log_format: fancy\n", "{file}: log_format: Input should be 'auto', 'json' or"),
        ("clusters:\n  - name: Big Cluster\n", "{file}: clusters[Big Cluster].name: must be"),
        ("checks:\n  drift_share: 2\n", "{file}: checks.drift_share: Input should be less"),
        ("roles:\n  slack_users:\n    U1: god\n", "{file}: roles: slack_users.U1: role 'god'"),
        (
            "clusters: [{name: a}]\nenvironments: [{name: prod, cluster: b}]\n",
            "{file}: environments[prod].cluster: unknown cluster 'b' (known: ['a'])",
        ),
        (
            "clusters: [{name: a}]\n"
            "environments: [{name: prod, cluster: a, requires_previous: stage}]\n",
            "{file}: environments[prod].requires_previous: unknown environment 'stage'",
        ),
        (
            "clusters: [{name: a}, {name: a}]\n",
            "{file}: clusters: duplicate name a",
        ),
        (
            "clusters: [{name: a}]\nenvironments: [{name: staging, cluster: a},"
            " {name: prod, cluster: a, aliases: [staging]}]\n",
            "{file}: environments[prod].aliases: 'staging' already names staging",
        ),
        ("api: [\n", "{file}: not valid YAML at line 2"),
        ("slack:\n  mode: http\nslack:\n  mode: socket\n", "{file}: not valid YAML at line 3"),
        ("- just\n- a list\n", "{file}: the top level must be a mapping of keys, not list"),
        ("_env_file: /etc/passwd\n", "{file}: _env_file: unknown key"),
        (
            "database_url: notaurl\n",
            "{file}: database_url: not a database URL; use sqlite:///path/to/file.db or "
            "postgresql://user@host/database (psycopg 3)",
        ),
        ("database_url: 'postgresql://u@h:port/d'\n", "{file}: database_url: not a database URL"),
        (
            "database_url: mysql://u@h/d\n",
            "{file}: database_url: unsupported database 'mysql'; use",
        ),
        ("database_url: oracle://x\n", "{file}: database_url: unsupported database 'oracle'; use"),
        (
            "log_level: LOUD\n",
            "{file}: log_level: 'LOUD' is not a log level; use one of DEBUG, INFO, WARNING, "
            "ERROR, CRITICAL",
        ),
        ("log_level: warn\n", "{file}: log_level: 'warn' is not a log level"),  # uvicorn: no
        ("api:\n  port: 70000\n", "{file}: api.port: Input should be less than or equal to 65535"),
        ("api:\n  port: 0\n", "{file}: api.port: Input should be greater than or equal to 1"),
        ("slack:\n  http_port: -1\n", "{file}: slack.http_port: Input should be greater"),
    ],
)
def test_bad_config_file_gives_one_clear_message(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text, "bad.yaml")
    message = config_error(path)
    assert message.startswith(expected.format(file=path)), message
    assert "Traceback" not in message and "pydantic" not in message


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///./x.db",
        "sqlite+pysqlite:////abs/x.db",
        "postgres://u@h/d",
        "postgresql://u:p@h:5433/d",
        "postgresql+psycopg://u@h/d",
    ],
)
def test_supported_database_urls_are_accepted(url: str) -> None:
    assert Settings(database_url=url).database_url == url


def test_log_level_is_case_insensitive() -> None:
    assert Settings(log_level="debug").log_level == "DEBUG"
    assert Settings(log_level=" Warning ").log_level == "WARNING"


def test_bad_database_url_from_the_environment_names_it_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELDECK_DATABASE_URL", "postgresql+asyncpg://md:s3cret@db/md")
    message = config_error()
    assert message == (
        "environment variable MODELDECK_DATABASE_URL: database_url: unsupported database "
        "'postgresql+asyncpg'; use sqlite:///path/to/file.db or postgresql://user@host/database "
        "(psycopg 3)"
    )
    assert "s3cret" not in message


def test_duplicate_key_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "log_level: INFO\nlog_level: DEBUG\n")
    assert "duplicate key 'log_level'" in config_error(path)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert (
        config_error(missing)
        == f"{missing}: cannot read the config file: No such file or directory"
    )
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert config_error(binary) == f"{binary}: not a UTF-8 text file"


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "# nothing yet\n")).clusters == []


def test_several_problems_are_all_listed(tmp_path: Path) -> None:
    path = write(tmp_path, "api:\n  port: x\n  hots: y\nlog_leve: z\n")
    lines = config_error(path).splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"{path}: ") for line in lines)
