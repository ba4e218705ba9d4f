"""evidently HTML reports, built only when someone asks, from the stored window.

Checks never build figures (that is most of a Report's cost); a person opening a check's
report gets evidently's full preset over exactly that window and the reference the check
used, cached beside the data so the second view is instant.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlmodel import Session

from modeldeck.core.clock import as_utc
from modeldeck.core.config import Settings
from modeldeck.core.errors import InvalidInput, NotFound
from modeldeck.core.monitoring import columns as C
from modeldeck.core.monitoring import reference, service
from modeldeck.core.monitoring.models import CheckKind, ColumnKind
from modeldeck.core.monitoring.profile import Profile
from modeldeck.core.monitoring.store import Store
from modeldeck.core.monitoring.window import Window, load


def html(session: Session, *, settings: Settings, check_id: int) -> str:
    """The report of check `check_id` (NotFound if unknown or it has no data to show)."""
    check = service.get_check(session, check_id)
    if check.kind not in (CheckKind.drift, CheckKind.quality, CheckKind.decay):
        raise InvalidInput(
            f"check {check_id} is a {check.kind} check; reports cover drift, quality and decay"
        )
    store = Store(settings.data_dir)
    path = f"{store.root}/reports/check-{check_id}.html"
    if store.fs.exists(path):
        with store.fs.open(path, "rb") as handle:
            return bytes(handle.read()).decode("utf-8")
    window = load(
        session,
        settings=settings,
        deployment_id=check.deployment_id,
        window_end=as_utc(check.window_end),
        window_start=as_utc(check.window_start),
        reference_hash=check.reference_hash,
        clock=lambda: as_utc(check.window_end),
    )
    if window.load_error:
        raise NotFound(f"check {check_id}'s data cannot be read: {window.load_error}")
    if window.rows == 0:
        raise NotFound(f"check {check_id}'s window has no predictions to report on")
    text = build(window, check.kind)
    store.write_bytes(path, text.encode("utf-8"))
    return text


def build(window: Window, kind: CheckKind) -> str:
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    profile = window.require_profile()
    if kind == CheckKind.decay:
        current, ref, definition = _performance_data(window, profile)
        preset: Any = _performance_preset(profile)
    else:
        names = [
            n
            for n, s in profile.features.items()
            if s.kind in (ColumnKind.numerical, ColumnKind.categorical, ColumnKind.text)
        ]
        current = window.frame(names)
        ref = pd.DataFrame(reference.load_frame(window.settings, profile, names))
        definition = _definition(profile, names)
        preset = (
            DataDriftPreset(drift_share=window.cfg.drift_share)
            if kind == CheckKind.drift
            else DataSummaryPreset()
        )
    report = Report([preset])
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition) if ref is not None else None,
    )
    return str(snapshot.get_html_str(as_iframe=False))


def _definition(profile: Profile, names: list[str], **extra: Any) -> Any:
    from evidently import DataDefinition

    def of(kind: ColumnKind) -> list[str]:
        return [n for n in names if profile.columns[n].kind == kind]

    return DataDefinition(
        numerical_columns=of(ColumnKind.numerical),
        categorical_columns=of(ColumnKind.categorical),
        text_columns=of(ColumnKind.text),
        **extra,
    )


def _performance_data(
    window: Window, profile: Profile
) -> tuple[pd.DataFrame, pd.DataFrame | None, Any]:
    from evidently import BinaryClassification, MulticlassClassification, Regression

    labelled = window.labelled()
    if labelled.num_rows == 0:
        raise NotFound(
            "no labelled predictions in this window yet",
            hint="the decay report needs labels; the check used the estimate",
        )
    task = profile.task
    probas = [n for n in labelled.column_names if n.startswith(C.PROBA_PREFIX)]
    keep = [C.LABEL, C.PREDICTION, *probas]
    current = labelled.select(keep).to_pandas()
    ref_names = [n for n in keep if n in profile.columns or n == C.LABEL]
    has_ref = C.LABEL in profile.columns and C.PREDICTION in profile.columns
    ref = (
        pd.DataFrame(reference.load_frame(window.settings, profile, ref_names)) if has_ref else None
    )
    if not task.classification:
        return (
            current,
            ref,
            _definition(
                profile, [], regression=[Regression(target=C.LABEL, prediction=C.PREDICTION)]
            ),
        )
    if task.positive is not None:
        pos = C.PROBA_PREFIX + task.positive
        spec = BinaryClassification(
            target=C.LABEL,
            prediction_labels=C.PREDICTION,
            prediction_probas=pos if pos in probas else None,
            pos_label=task.positive,
        )
    else:  # evidently names multiclass probability columns by class
        rename = {n: C.proba_class(n) for n in probas}
        current = current.rename(columns=rename)
        ref = ref.rename(columns=rename) if ref is not None else None
        spec = MulticlassClassification(
            target=C.LABEL,
            prediction_labels=C.PREDICTION,
            prediction_probas=list(rename.values()) or None,
        )
    for frame in (current, ref):
        if frame is not None:
            for name in (C.LABEL, C.PREDICTION):
                frame[name] = frame[name].astype(str)
    return current, ref, _definition(profile, [], classification=[spec])


def _performance_preset(profile: Profile) -> Any:
    from evidently.presets import ClassificationPreset, RegressionPreset

    return ClassificationPreset() if profile.task.classification else RegressionPreset()
