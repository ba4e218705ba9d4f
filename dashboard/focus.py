"""What a page needs before it can draw: a usable database, some models, and the model and
environment in focus. Each stops the page with a clear message instead of an error."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from modeldeck.core.errors import ModeldeckError
from modeldeck.core.fleet import FleetCounts
from modeldeck.dashboard import loaders, safe, state

_NO_SCHEMA = ("no such table", "does not exist", "undefinedtable")


def url() -> str:
    return state.settings().database_url


def database_ready() -> FleetCounts:
    """The registry's counts, or stop the page saying why the database cannot be read
    (never showing its URL: it may hold a password)."""
    try:
        return loaders.counts(url())
    except (OperationalError, ProgrammingError, DBAPIError) as exc:
        text = str(exc).lower()
        if any(marker in text for marker in _NO_SCHEMA):
            st.error(
                "**The database has no modeldeck schema yet.**\n\nRun `modeldeck db "
                "upgrade` once (or `modeldeck demo` for a demo world), then reload."
            )
        else:
            kind = type(exc.orig if exc.orig is not None else exc).__name__
            st.error(
                f"**The database cannot be reached** ({kind}).\n\nCheck "
                "`database_url` / `MODELDECK_DATABASE_URL` and that the server is up; "
                "this page retries on reload."
            )
        st.stop()
        raise  # unreachable


def welcome(counts: FleetCounts) -> None:
    """The first-run page: nothing is registered yet, so say how to start."""
    st.title("Welcome to modeldeck")
    st.info(
        "No models are registered yet, so there is nothing to show. Two ways to start:",
        icon=":material/waving_hand:",
    )
    demo, own = st.columns(2, border=True)
    demo.markdown("#### Explore the demo world")
    demo.markdown(
        "Four models on two simulated GPU clusters (A100, L4) with 90 days of "
        "history: drift, a broken upstream, decay, an idle GPU."
    )
    demo.code("modeldeck demo", language="bash")
    own.markdown("#### Register your own model")
    own.markdown("Register a version with its lineage, then promote it:")
    own.code(
        "modeldeck register fraud-detector 1.0.0 \\\n"
        "  --image ghcr.io/acme/fraud-detector:1.0.0 \\\n"
        "  --artifact-uri s3://models/fraud-detector/1.0.0/model.pkl \\\n"
        "  -m auc=0.91\n"
        "modeldeck promote fraud-detector 1.0.0 --to staging",
        language="bash",
    )
    if counts.environments == 0:
        st.warning(
            "No environments are configured either: add `clusters:` and "
            "`environments:` to modeldeck.yaml (see deploy/modeldeck.example.yaml).",
            icon=":material/settings:",
        )


def models_or_welcome() -> list[str]:
    """Model names, or the first-run page when there are none."""
    counts = database_ready()
    if counts.models == 0:
        welcome(counts)
        st.stop()
    return [m.name for m in loaders.models(url())]


def model_and_environment(*, environment: bool = True) -> tuple[str, str]:
    """The model (and environment) the page looks at, chosen at the top of the page and
    shared with the other pages."""
    names = models_or_welcome()
    envs = loaders.environment_names(url())
    if environment and not envs:
        st.warning("No environments are configured: add them to modeldeck.yaml.")
        st.stop()
    left, right = st.columns(2)
    model = state.pick("model", "Model", names, container=left)
    assert model is not None
    if not environment:
        return model, ""
    # Default to the last environment (in promotion order) where the model runs now.
    live = {
        r.environment
        for r in loaders.fleet(url(), state.time_range().end)
        if r.model == model and r.version
    }
    default = next((e for e in reversed(envs) if e in live), None)
    env = state.pick("env", "Environment", envs, default=default, container=right)
    return model, env or ""


def stop_on_error(exc: ModeldeckError) -> None:
    """A domain error while reading (a model deleted meanwhile …) as a warning, not a trace."""
    st.warning(safe.redact(str(exc)))
    st.stop()
