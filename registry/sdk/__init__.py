"""The Python SDK: what training and serving code calls.

    import registry
    reg = registry.connect()                      # MLLEDGER_DB or ./.mlledger/ledger.db
    raw = reg.register_dataset("patients", "1", uri="file://p.csv", path="p.csv",
                               records=ids, subjects=patient_ids)
    with reg.run("train", params={"C": 1.0}, inputs=[raw]) as run:
        run.log_metrics({"auc": 0.97})
        model = run.register_model("clf", artifact_path="model.pkl", framework="sklearn")
    reg.deploy("clf-api", endpoint="https://...", served={model: 100})
    reg.log_predictions("clf-api", model=model, records=ids, outputs=scores)

Every write becomes events appended through ``Ledger.append``. A run's records
(``run-started``, inputs, params, metrics, model versions) are buffered and
appended in one batch when the run ends; earlier when another write or a
question needs them, on ``flush()``, or with the first record made
``FLUSH_AFTER_SECONDS`` after the buffer began, so a long run shows up as
running while it runs.

The package, by seam: ``connection`` (``Registry``, ``connect``), ``session`` (the
plumbing and the buffer), ``datasets``, ``runs``, ``models``, ``deployments``,
``predictions``, ``subjects`` (personal data, erasure), ``questions``, ``handles``
(what calls return), ``capture`` (digests, code and environment) and ``values``
(checks of keys and columns).
"""

from __future__ import annotations

from registry.sdk.capture import KEY_PACKAGES, capture_code, capture_environment, file_digest
from registry.sdk.connection import Registry, connect, open_backend
from registry.sdk.handles import DatasetVersion, Deployment, ModelVersion, NodeLike
from registry.sdk.runs import Run
from registry.sdk.session import FLUSH_AFTER_SECONDS
from registry.writes import PREDICTION_CHUNK, RECORD_CHUNK

__all__ = [
    "FLUSH_AFTER_SECONDS",
    "KEY_PACKAGES",
    "PREDICTION_CHUNK",
    "RECORD_CHUNK",
    "DatasetVersion",
    "Deployment",
    "ModelVersion",
    "NodeLike",
    "Registry",
    "Run",
    "capture_code",
    "capture_environment",
    "connect",
    "file_digest",
    "open_backend",
]
