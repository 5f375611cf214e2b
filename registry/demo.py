"""``mlledger demo``: a cancer-screening model's life, recorded and questioned.

The scenario, on scikit-learn's breast-cancer data (569 rows, each a patient
record; a few patients have a second record from a follow-up visit), backfilled
over two weeks:

- day 0: the raw extract is registered, with record keys and patient ids;
- day 1: a cleaned version is derived (outliers dropped, features clipped);
- day 2: run 1 trains a logistic regression on the raw data -> model v1;
- day 3: deployment ``screening-api`` goes live with v1, alias ``production``;
- days 3-9: predictions on incoming records;
- day 9: run 2 trains a random forest on the cleaned data -> model v2;
- day 10: canary, 90 % v1 / 10 % v2; day 11: v2 takes all traffic and the
  alias moves; predictions until day 14.

Then the six questions are asked and answered. Run again on the same ledger,
the demo records nothing new and asks again.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from registry.errors import ConfigError
from registry.ids import label_of
from registry.ledger import Ledger
from registry.sdk import Registry, connect
from registry.settings import Settings, given, normalise_url
from registry.wording import counted, noun

PATIENTS_WITH_TWO_RECORDS = 89


def _record_key(i: int) -> str:
    return f"bc-{i:04d}"


def _patient(i: int) -> str:
    # The last 89 rows are follow-up visits of earlier patients.
    first_visits = 569 - PATIENTS_WITH_TWO_RECORDS
    return f"patient-{i if i < first_visits else i - PATIENTS_WITH_TWO_RECORDS * 2:04d}"


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue())


def names_of(db: str, project: str = "demo") -> dict[str, Any]:
    """The names the demo's questions use (its example record, that record's patient,
    the datasets, models and deployment), as the demo recorded them in ``db``."""
    state = _workdir(db) / f"{project}.json"
    names: dict[str, Any] = json.loads(state.read_text())
    return names


def _workdir(db: str) -> Path:
    url = normalise_url(db)
    base = (
        Path(url[len("sqlite:///") :]).parent if url.startswith("sqlite:///") else Path(".mlledger")
    )
    work = base / "demo"
    work.mkdir(parents=True, exist_ok=True)
    return work


def _sklearn() -> Any:
    """The parts of numpy and scikit-learn the scenario uses; ConfigError without them."""
    try:
        import types

        import numpy as np
        from sklearn.datasets import load_breast_cancer
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
        from sklearn.model_selection import train_test_split
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        raise ConfigError(
            "the demo needs scikit-learn: pip install 'mlledger[demo]' (make demo installs it)"
        ) from None
    return types.SimpleNamespace(
        np=np,
        load_breast_cancer=load_breast_cancer,
        RandomForestClassifier=RandomForestClassifier,
        LogisticRegression=LogisticRegression,
        accuracy_score=accuracy_score,
        f1_score=f1_score,
        roc_auc_score=roc_auc_score,
        train_test_split=train_test_split,
        make_pipeline=make_pipeline,
        StandardScaler=StandardScaler,
    )


ENDPOINT = "https://screening.internal/v1/score"


class _Scenario:
    """The scenario's data and the steps that record it, day by day from ``start``."""

    def __init__(self, reg: Registry, work: Path, start: datetime) -> None:
        self.sk = _sklearn()
        self.reg, self.work, self.start = reg, work, start
        data = self.sk.load_breast_cancer()
        self.X, self.y = data.data, data.target
        self.n_rows = len(self.y)
        self.keys = [_record_key(i) for i in range(self.n_rows)]
        self.patients = [_patient(i) for i in range(self.n_rows)]
        self.columns = [c.replace(" ", "_") for c in data.feature_names]
        self.schema = {**{c: "float64" for c in self.columns}, "target": "int64"}

    def day(self, n: float) -> datetime:
        return self.start + timedelta(days=n)

    def dataset(self, name: str, rows: Any, when: float, **kw: Any) -> Any:
        """Write the rows as CSV beside the ledger and register that file's version."""
        keys, X, y = self.keys, self.X, self.y
        path = self.work / f"{name.replace('-', '_')}.csv"
        _write_csv(
            path,
            ["record_key", *self.columns, "target"],
            [[keys[i], *X[i].round(6).tolist(), int(y[i])] for i in rows],
        )
        return self.reg.register_dataset(
            name,
            "2026.1",
            uri=path.resolve().as_uri(),
            path=path,
            schema=self.schema,
            row_count=len(rows),
            records=[keys[i] for i in rows],
            subjects=[self.patients[i] for i in rows],
            occurred_at=self.day(when),
            **kw,
        )

    def datasets(self) -> tuple[Any, Any, Any]:
        """The raw extract and its cleaned version (rows beyond 4 standard deviations
        dropped), and the rows kept."""
        np, X = self.sk.np, self.X
        raw = self.dataset(
            "breast-cancer-raw",
            range(self.n_rows),
            0,
            tags={"source": "sklearn.datasets.load_breast_cancer"},
        )
        z = np.abs((X - X.mean(axis=0)) / X.std(axis=0))
        keep = np.where((z < 4).all(axis=1))[0]
        clean = self.dataset(
            "breast-cancer-clean", keep, 1, derived_from=[raw], tags={"cleaning": "drop |z| >= 4"}
        )
        return raw, clean, keep

    def train(
        self,
        job: str,
        dataset: Any,
        rows: Any,
        estimator: Any,
        params: dict[str, Any],
        when: float,
        model_file: str,
    ) -> Any:
        sk, X, y = self.sk, self.X, self.y
        train_idx, test_idx = sk.train_test_split(
            rows, test_size=0.25, random_state=7, stratify=y[rows]
        )
        with self.reg.run(
            job,
            params=params,
            inputs=[dataset],
            occurred_at=self.day(when),
            ended_at=self.day(when + 0.1),
            tags={"team": "oncology-ml"},
        ) as run:
            estimator.fit(X[train_idx], y[train_idx])
            proba = estimator.predict_proba(X[test_idx])[:, 1]
            pred = (proba >= 0.5).astype(int)
            run.log_metrics(
                {
                    "accuracy": sk.accuracy_score(y[test_idx], pred),
                    "roc_auc": sk.roc_auc_score(y[test_idx], proba),
                    "f1": sk.f1_score(y[test_idx], pred),
                }
            )
            artifact = self.work / model_file
            artifact.write_bytes(pickle.dumps(estimator))
            model = run.register_model(
                "cancer-screening", artifact_path=artifact, framework="sklearn"
            )
        return model, estimator, test_idx

    def serve(self, deployment: Any, served: list[tuple[Any, Any]], pool: list[int], n: int) -> Any:
        """Incoming records scored over days 3..14 by whatever was live then; logged in
        batches of 500, as a serving process would. Return the records and models."""
        (m1, est1), (m2, est2) = served
        rng = random.Random(42)
        X = self.X
        scores = {
            id(est): dict(zip(pool, est.predict_proba(X[pool])[:, 1].tolist(), strict=True))
            for est in (est1, est2)
        }
        rows, outputs, models, times = [], [], [], []
        for k in range(n):
            when = self.day(3.05 + 10.9 * k / max(n - 1, 1))
            i = rng.choice(pool)
            if when < self.day(10):
                model, est = m1, est1
            elif when < self.day(11):
                model, est = (m2, est2) if rng.random() < 0.10 else (m1, est1)
            else:
                model, est = m2, est2
            score = scores[id(est)][i]
            rows.append(self.keys[i])
            outputs.append(
                {
                    "malignant_probability": round(1 - score, 4),
                    "label": "benign" if score >= 0.5 else "malignant",
                }
            )
            models.append(model)
            times.append(when)
        for start_row in range(0, n, 500):
            part = slice(start_row, start_row + 500)
            self.reg.log_predictions(
                deployment,
                records=rows[part],
                outputs=outputs[part],
                models=models[part],
                at=times[part],
            )
        return rows, models

    def example(self, rows: list[str], models: list[Any]) -> str:
        """The example record: scored by both versions, its patient seen twice, few
        scorings."""
        keys, patients = self.keys, self.patients
        by_record: dict[str, list[str]] = {}
        for key, model in zip(rows, models, strict=True):
            by_record.setdefault(key, []).append(model.id)
        visits = {p: patients.count(p) for p in set(patients)}
        return min(
            by_record,
            key=lambda k: (
                len(set(by_record[k])) != 2,
                visits[patients[keys.index(k)]] != 2,
                len(by_record[k]),
                k,
            ),
        )


def record_scenario(reg: Registry, work: Path, predictions: int, start: datetime) -> dict[str, Any]:
    """Record the whole scenario; return the names the questions use."""
    s = _Scenario(reg, work, start)
    sk, day = s.sk, s.day
    raw, clean, keep = s.datasets()
    m1, est1, test1 = s.train(
        "train-logreg",
        raw,
        sk.np.arange(s.n_rows),
        sk.make_pipeline(sk.StandardScaler(), sk.LogisticRegression(max_iter=5000, C=1.0)),
        {"model": "logistic_regression", "C": 1.0, "scaler": "standard"},
        2,
        "model_v1.pkl",
    )
    deployment = reg.deploy(
        "screening-api", endpoint=ENDPOINT, served={m1: 100}, occurred_at=day(3)
    )
    reg.set_alias(m1, "production", moved_by="dr.lopez", occurred_at=day(3))
    m2, est2, _ = s.train(
        "train-random-forest",
        clean,
        keep,
        sk.RandomForestClassifier(n_estimators=200, max_depth=6, random_state=7),
        {"model": "random_forest", "n_estimators": 200, "max_depth": 6},
        9,
        "model_v2.pkl",
    )
    for served, when in (({m1: 90, m2: 10}, 10), ({m2: 100}, 11)):
        reg.deploy("screening-api", endpoint=ENDPOINT, served=served, occurred_at=day(when))
    reg.set_alias(m2, "production", moved_by="dr.okafor", occurred_at=day(11))
    pool = sorted(int(i) for i in test1)
    rows, models = s.serve(deployment, [(m1, est1), (m2, est2)], pool, predictions)
    example = s.example(rows, models)
    # Personal attributes go to the encrypted vault, never to the log.
    reg.store_subject_data(
        s.patients[s.keys.index(example)], {"name": "Jane Example", "year_of_birth": 1961}
    )
    return _names(raw.id, clean.id, m1.id, m2.id, deployment.id, example, day(5.0))


def _names(
    raw: str, clean: str, m1: str, m2: str, deployment: str, record: str, as_of: datetime
) -> dict[str, Any]:
    index = int(record.split("-")[1])
    return {
        "raw": raw,
        "clean": clean,
        "m1": m1,
        "m2": m2,
        "deployment": deployment,
        "record": record,
        "subject": _patient(index),
        "as_of": as_of.isoformat(),
    }


def run_demo(
    db: str | None,
    *,
    project: str = "demo",
    predictions: int = 3000,
    as_json: bool = False,
    settings: Settings | None = None,
) -> int:
    """Record the scenario (unless this ledger has it already) and print the answers;
    ``db`` defaults to the ``settings``' database (``MLLEDGER_*``, read when not given)."""
    settings = given(settings)
    db = db or settings.db
    work = _workdir(db)
    state = work / f"{project}.json"
    with connect(db, project=project, actor="demo@mlledger", settings=settings) as reg:
        recorded = False
        if state.exists() and reg.ledger.head() >= 0:
            names = json.loads(state.read_text())
        else:
            start = (datetime.now(UTC) - timedelta(days=15)).replace(
                hour=8, minute=0, second=0, microsecond=0
            )
            names = record_scenario(reg, work, predictions, start)
            state.write_text(json.dumps(names, indent=2))
            recorded = True
        if "job" not in names:
            names["job"] = _dispatch(reg, work, normalise_url(db, settings), names["clean"])
            state.write_text(json.dumps(names, indent=2))
        # Erased before the questions, so a second run (a no-op erasure) answers the same.
        erasure = _erasure(reg, _patient(7))
        result = {
            "recorded": recorded,
            "names": names,
            "answers": _answers(reg, names),
            "integrity": _integrity(reg.ledger),
            "erasure": erasure,
            "reports": _reports(reg, work, names),
            "job": reg.job(names["job"]),
        }
        result["events"] = reg.ledger.head() + 1
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    print(
        f"mlledger demo: {'recorded' if recorded else 'found'} the scenario in {db} "
        f"({result['events']} events, project {project!r})\n"
    )
    for title, body in _sections(result):
        print(title)
        print(body)
        print()
    print(f"Try: mlledger scored {names['record']} --project {project} --json")
    print(f"     mlledger audit prove {result['integrity']['proved_position']} --out proof.json")
    print(f"     open {result['reports']['dossier']}/index.html in a browser")
    return 0


def _answers(reg: Registry, names: dict[str, Any]) -> dict[str, Any]:
    """The six questions, asked of the scenario's names."""
    return {
        "scored": reg.scored(names["record"]),
        "trained_on": reg.trained_on(names["m2"]),
        "downstream": reg.downstream(names["raw"]),
        "lineage_then": reg.lineage(
            names["deployment"], direction="upstream", depth=4, as_of=names["as_of"]
        ),
        "lineage_now": reg.lineage(names["deployment"], direction="upstream", depth=4),
        "footprint": reg.footprint(names["subject"]),
        "history": reg.history(names["deployment"]),
    }


def _sections(result: dict[str, Any]) -> list[tuple[str, str]]:
    """Each answer's title and its text, in the order printed."""
    from executors.cli import render_job
    from registry import cli

    names, answers, erasure = result["names"], result["answers"], result["erasure"]
    return [
        (f"1. scored: who scored record {names['record']}?", cli.render_scored(answers["scored"])),
        (
            "2. trained-on: which data trained the current model?",
            cli.render_trained_on(answers["trained_on"]),
        ),
        (
            "3. downstream: what depends on the raw extract?",
            cli.render_downstream(answers["downstream"]),
        ),
        (
            f"4. lineage: what fed the deployment on {names['as_of'][:10]}, and now?",
            cli.render_lineage(answers["lineage_then"])
            + "\n"
            + cli.render_lineage(answers["lineage_now"]),
        ),
        (
            f"5. footprint: where is {names['subject']}'s data?",
            cli.render_footprint(answers["footprint"]),
        ),
        (
            "6. history: what did the deployment serve, when?",
            cli.render_history(answers["history"]),
        ),
        ("7. integrity: is the log as it was written?", _render_integrity(result["integrity"])),
        (f"8. erasure: forget {erasure['patient']} (GDPR Art. 17)", _render_erasure(erasure)),
        ("9. reports and exports: what a regulator is handed", _render_reports(result["reports"])),
        (
            "10. dispatch: a retraining job, run by the local executor",
            render_job(result["job"]),
        ),
    ]


#: The retraining job the demo dispatches: it records into the run the executor started.
RETRAIN = """
import os, pickle, registry
from pathlib import Path
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

reg = registry.connect()
with reg.job_run(inputs=[os.environ["DEMO_DATASET"]]) as run:
    X, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X, y)
    run.log_params({"model": "logistic_regression", "scaler": "standard"})
    run.log_metrics({"train_accuracy": float(model.score(X, y))})
    path = Path("model_retrained.pkl")
    path.write_bytes(pickle.dumps(model))
    run.register_model("cancer-screening-retrain", artifact_path=path, framework="sklearn")
print("retrained on", len(y), "records")
"""


def _dispatch(reg: Registry, work: Path, url: str, dataset: str) -> str:
    """Submit the retraining job through the local executor and wait for it; return its
    run id (the ledger then holds where it ran and how it ended)."""
    import sys

    from executors.dispatch import Dispatcher
    from executors.local import LocalExecutor
    from executors.spec import JobSpec

    dispatcher = Dispatcher(reg, LocalExecutor(work / "jobs"), ledger_url=url)
    spec = JobSpec(
        job="retrain-logreg",
        command=(sys.executable, "-c", RETRAIN),
        env={"DEMO_DATASET": dataset},
        params={"trigger": "weekly"},
        deadline_s=300,
        workdir=str(work),
    )
    submitted = dispatcher.submit(spec)
    dispatcher.wait(submitted.run, timeout=300)
    return submitted.run


def _integrity(ledger: Ledger) -> dict[str, Any]:
    """Sign a checkpoint (the key made on first use), verify the whole log against it,
    and prove the newest prediction batch, as an auditor would offline."""
    from audit.checkpoints import load_signing_key, write_checkpoint
    from audit.proofs import make_bundle, verify_bundle
    from audit.verify import verify

    key, path, _ = load_signing_key(ledger.store.url, create=True)
    checkpoint, _ = write_checkpoint(ledger.store, key)
    report = verify(ledger.store, key.verifier())
    position = max(e.position for e in ledger.read() if e.type == "predictions-logged")
    bundle = make_bundle(ledger.store, position)
    proved = verify_bundle(bundle, key.verifier())
    return {
        "public_key": key.verifier().to_string(),
        "signing_key_file": str(path),
        "checkpoint": checkpoint.as_dict(),
        "verified": report.ok,
        "verify_seconds": report.seconds,
        "proved_position": proved.index,
        "proof_hashes": len(bundle["inclusion_proof"]),
    }


def _erasure(reg: Any, patient: str) -> dict[str, Any]:
    """Erase one patient (a no-op once done), then check the certificate offline and ask
    where their data is, as a data-protection officer would."""
    from audit.erasure import signing_key
    from audit.erasure.certificate import verify_certificate

    plan = reg.erase(patient, dry_run=True)["plan"]
    outcome = reg.erase(patient)
    envelope = reg.erasure_certificate(outcome["erasure"])
    verified = verify_certificate(envelope, signing_key(reg.ledger).verifier())
    return {
        "patient": patient,
        "plan": plan,
        "status": outcome["status"],
        "erasure": outcome["erasure"],
        "erased_position": outcome["erased_position"],
        "certificate": verified.as_dict(),
        "footprint": reg.footprint(patient),
    }


def _reports(reg: Any, work: Path, names: dict[str, Any]) -> dict[str, Any]:
    """The current model's dossier, the subject-access report of the patient the
    questions follow, and a Parquet export whose signed manifest is then verified, in
    ``<work>/reports`` (rewritten on every run)."""
    import shutil

    from audit.erasure import signing_key
    from audit.exports import export, verify_export
    from audit.proofs import verify_bundle
    from audit.reports import build_model_dossier
    from audit.reports.subject import write_subject_report

    out = work / "reports"
    shutil.rmtree(out, ignore_errors=True)
    key = signing_key(reg.ledger)
    dossier = build_model_dossier(reg.ledger, reg.project, names["m2"], key)
    dossier.write(out / "dossier")
    proved = [verify_bundle(b, key.verifier()).index for b in dossier.evidence.values()]
    subject = reg.subject_report(names["subject"])
    write_subject_report(subject, out / "subject-access")
    exported = export(reg.ledger, "parquet", out / "export", key, project=reg.project)
    check = verify_export(out / "export", key.verifier())
    return {
        "dossier": str(out / "dossier"),
        "evidence_verified": len(proved),
        "subject_access": str(out / "subject-access"),
        "subject_counts": subject["counts"],
        "export": str(out / "export"),
        "export_rows": sum(f.get("rows") or 0 for f in exported.files),
        "export_files": len(exported.files),
        "export_verified": check.ok,
        "export_checkpoint": exported.checkpoint["tree_size"],
    }


def _render_reports(d: dict[str, Any]) -> str:
    c = d["subject_counts"]
    return "\n".join(
        [
            f"  model dossier: {d['dossier']}/index.html (and model-card.md); "
            f"{counted(d['evidence_verified'], 'proof bundle')} "
            f"{noun(d['evidence_verified'], 'verifies', 'verify')} offline",
            f"  subject-access report: {d['subject_access']}/index.html "
            f"({counted(c['records'], 'record')}, {counted(c['models'], 'model')}, "
            f"{counted(c['predictions'], 'prediction')})",
            f"  Parquet export: {counted(d['export_rows'], 'row')} in "
            f"{counted(d['export_files'], 'file')} at "
            f"{d['export']}, checkpoint at size {d['export_checkpoint']}; signed manifest "
            f"{'verifies' if d['export_verified'] else 'FAILED'} "
            f"(mlledger export verify {d['export']} --public-key KEY, where KEY is what "
            "'mlledger audit public-key' prints)",
        ]
    )


def _render_erasure(d: dict[str, Any]) -> str:
    c = {**d["certificate"], **d["certificate"]["affected"]}
    flags = ", ".join(f"{label_of(m['model'])} {m['status']}" for m in c["remediation"])
    return "\n".join(
        [
            f"  {d['status']}: erasure {d['erasure']} at position {d['erased_position']}",
            f"  {counted(c['records'], 'record')} in "
            f"{counted(len(c['datasets']), 'dataset version')}, "
            f"{counted(c['predictions'], 'prediction')}, "
            f"{counted(c['vault_entries'], 'vault entry', 'vault entries')}, "
            f"{counted(len(c['redactions']), 'event')} redacted",
            f"  models: {flags or 'none'}",
            "  certificate: signature, checkpoint and inclusion proofs verify offline",
            f"  footprint now answers: erased at position {d['footprint']['erased']['position']}",
        ]
    )


def _render_integrity(d: dict[str, Any]) -> str:
    c = d["checkpoint"]
    return "\n".join(
        [
            f"  checkpoint #{c['seq']} signs {c['tree_size']} events, root {c['root_hash']}",
            f"  by {d['public_key']}",
            f"  audit verify: {'OK' if d['verified'] else 'FAILED'} (every leaf recomputed, "
            f"{d['verify_seconds']:.2f} s)",
            f"  position {d['proved_position']} (the newest predictions) is in the log: "
            f"{counted(d['proof_hashes'], 'hash', 'hashes')} "
            f"{noun(d['proof_hashes'], 'leads', 'lead')} from it to the signed root",
        ]
    )
