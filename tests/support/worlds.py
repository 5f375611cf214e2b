"""Ledgers filled with a known scenario, shared by the tests that question them.

``build_world``: the lineage scenario of the query tests (three datasets, three
models, one deployment that switched models, predictions); ``day(n)`` dates its
events. ``personal_dataset``: a dataset whose records belong to data subjects.
``canary_world``: thousands of data subjects with one canary among them, for the
erasure and compliance canaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import registry
from registry import DatasetVersion, Deployment, ModelVersion, Registry

#: Subjects ``canary_world`` registers unless told otherwise.
CANARY_SUBJECTS = 2_000

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def day(n: float) -> datetime:
    """``n`` days after T0, the scenario's first day."""
    return T0 + timedelta(days=n)


def personal_dataset(
    reg: Registry,
    name: str,
    records: Sequence[str],
    subjects: Sequence[str | None],
    *,
    digest: str = "sha256:01",
    uri: str | None = None,
    **options: Any,
) -> DatasetVersion:
    """Version ``1`` (unless ``options`` say otherwise) of dataset ``name`` at ``uri``
    (default ``s3://b/NAME``): ``records``, each held on the subject at the same place
    in ``subjects``."""
    return reg.register_dataset(
        name,
        options.pop("version", "1"),
        uri=uri or f"s3://b/{name}",
        digest=digest,
        records=list(records),
        subjects=list(subjects),
        **options,
    )


@dataclass
class Scenario:
    """What ``build_world`` registered, for tests to name."""

    raw: DatasetVersion
    clean: DatasetVersion
    extra: DatasetVersion
    m1: ModelVersion
    m2: ModelVersion
    m3: ModelVersion
    api: Deployment
    run1: str
    run2: str


def build_world(reg: Registry) -> Scenario:
    """raw -> clean (derived); run1 trains m1 on raw; run2 trains m2 on clean + extra;
    run3 fine-tunes m3 from m2 on nothing new. api serves m1, then 50/50, then m2."""
    keys = [f"rec-{i}" for i in range(10)]
    subjects = ["ann", "ann", "bob", "bob", "cid", None, "dan", "dan", "eve", "eve"]
    raw = personal_dataset(reg, "raw", keys, subjects, occurred_at=day(0))
    clean = personal_dataset(
        reg,
        "clean",
        keys[:6],
        subjects[:6],
        digest="sha256:02",
        derived_from=[raw],
        occurred_at=day(1),
    )
    extra = personal_dataset(
        reg, "extra", ["x-1", "x-2"], ["zed", "ann"], digest="sha256:03", occurred_at=day(1)
    )
    with reg.run("train-a", inputs=[raw], occurred_at=day(2)) as run1:
        m1 = run1.register_model("clf", artifact_uri="s3://m/1", artifact_digest="sha256:a1")
    with reg.run("train-b", inputs=[clean, extra], occurred_at=day(5)) as run2:
        m2 = run2.register_model("clf", artifact_uri="s3://m/2", artifact_digest="sha256:a2")
    with reg.run("fine-tune", inputs=[m2], occurred_at=day(6)) as run3:
        m3 = run3.register_model("clf-tuned", artifact_uri="s3://m/3", artifact_digest="sha256:a3")
    api = reg.deploy("api", endpoint="https://api/score", served={m1: 100}, occurred_at=day(3))
    reg.deploy("api", endpoint="https://api/score", served={m1: 50, m2: 50}, occurred_at=day(7))
    reg.deploy("api", endpoint="https://api/score", served={m2: 100}, occurred_at=day(8))
    reg.log_predictions(api, model=m1, records=["rec-0", "rec-2"], outputs=[0.1, 0.2], at=day(4))
    reg.log_predictions(
        api,
        models=[m1, m2, m2],
        records=["rec-0", "rec-0", "x-1"],
        outputs=[0.3, {"label": "yes"}, 0.9],
        at=[day(7.1), day(7.2), day(8.5)],
        trace_ids=["t-1", "t-2", None],
    )
    return Scenario(raw, clean, extra, m1, m2, m3, api, run1.id, run2.id)


def canary_world(url: str, tag: str, size: int = CANARY_SUBJECTS) -> tuple[list[str], list[str]]:
    """Thousands of subjects (``size``) with records, vault entries and predictions; the
    canary among them. Returns the canary's record keys and planted attribute values."""
    reg = registry.connect(url, project="clinic", actor="loader")
    keys, subjects = [], []
    for i in range(size):
        for j in range(2):
            keys.append(f"patient-{i}-visit-{j}")
            subjects.append(f"patient-{i}")
    canary_records = [f"canary-record-{tag}-{j}" for j in range(3)]
    keys += canary_records
    subjects += [f"canary-subject-{tag}"] * 3
    raw = reg.register_dataset(
        "visits", "1", uri="s3://clinic/visits", digest="sha256:aa", records=keys, subjects=subjects
    )
    sample = reg.register_dataset(
        "sample",
        "1",
        uri="s3://clinic/sample",
        digest="sha256:bb",
        records=keys[::3] + canary_records[:1],
        derived_from=[raw],
    )
    with reg.run("train", inputs=[sample]) as run:
        model = run.register_model("risk", artifact_uri="s3://m/risk", artifact_digest="sha256:cc")
    reg.deploy("risk-api", endpoint="https://risk", served={model: 100})
    for start in range(0, len(keys), 1_500):
        chunk = keys[start : start + 1_500]
        outputs = [
            {"risk": 0.5, "note": f"canary-output-{tag}"} if k.startswith("canary") else 0.25
            for k in chunk
        ]
        reg.log_predictions("risk-api", model=model, records=chunk, outputs=outputs)
    planted = [f"canary-email-{tag}@example.com", f"canary-name-{tag}"]
    reg.store_subject_data(f"canary-subject-{tag}", {"email": planted[0], "name": planted[1]})
    for i in range(0, size, 50):
        reg.store_subject_data(f"patient-{i}", {"email": f"patient-{i}@example.com"})
    reg.close()
    return canary_records, planted
