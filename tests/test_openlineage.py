"""OpenLineage in and out: validation, the events an OpenLineage event becomes,
Marquez-shaped lineage, and emission of our own runs, models and deployments.

The fixtures in ``tests/fixtures/openlineage`` are exactly what the official
``openlineage-python`` client serialises for the builders below (a test checks
it); regenerate them with ``python -m tests.test_openlineage``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from openlineage.client.event_v2 import (
    DatasetEvent,
    InputDataset,
    Job,
    JobEvent,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
    StaticDataset,
)
from openlineage.client.facet_v2 import (
    data_quality_metrics_input_dataset,
    dataset_version_dataset,
    datasource_dataset,
    documentation_dataset,
    documentation_job,
    error_message_run,
    job_type_job,
    nominal_time_run,
    output_statistics_output_dataset,
    parent_run,
    processing_engine_run,
    schema_dataset,
    source_code_location_job,
    sql_job,
)
from openlineage.client.serde import Serde

from lineage import openlineage as ol
from lineage import queries
from lineage.openlineage import marquez, validation
from registry.assembly import open_ledger
from registry.errors import (
    Conflict,
    FieldError,
    InvalidInput,
    InvalidNodeId,
    LedgerError,
    NotFound,
)
from registry.events import StoredEvent
from registry.ids import NodeId, job_id
from registry.ledger import Ledger
from registry.sdk import Registry
from tests.mutations import set_at

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "openlineage"
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/client/python"
RUN = "0190b4a4-1f00-7000-8000-000000000001"
PARENT = "0190b4a4-1e00-7000-8000-000000000000"
PG = "postgres://db.example.com:5432"


# --- fixtures, built with the official client ----------------------------------------------


def _fields(*pairs: tuple[str, str]) -> list[schema_dataset.SchemaDatasetFacetFields]:
    return [schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in pairs]


def event_full() -> RunEvent:
    """A COMPLETE with a parent, job facets, two inputs (one versioned) and an output."""
    return RunEvent(
        eventType=RunState.COMPLETE,
        eventTime="2024-05-01T10:05:00.250000+00:00",
        producer=PRODUCER,
        run=_full_run(),
        job=_full_job(),
        inputs=_full_inputs(),
        outputs=_full_outputs(),
    )


def _full_run() -> Run:
    """The run of ``event_full``: a parent, a nominal time and the processing engine."""
    return Run(
        runId=RUN,
        facets={
            "parent": parent_run.ParentRunFacet(
                run=parent_run.Run(runId=PARENT),
                job=parent_run.Job(namespace="airflow-prod", name="orders_etl"),
                producer=PRODUCER,
            ),
            "nominalTime": nominal_time_run.NominalTimeRunFacet(
                nominalStartTime="2024-05-01T10:00:00Z", producer=PRODUCER
            ),
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version="2.9.1",
                name="Airflow",
                openlineageAdapterVersion="1.54.0",
                producer=PRODUCER,
            ),
        },
    )


def _full_job() -> Job:
    """The job of ``event_full``: its type, SQL, source code location and documentation."""
    return Job(
        namespace="airflow-prod",
        name="orders_etl.load_orders",
        facets={
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH", integration="AIRFLOW", jobType="TASK", producer=PRODUCER
            ),
            "sql": sql_job.SQLJobFacet(
                query="INSERT INTO daily SELECT * FROM orders",
                dialect="postgres",
                producer=PRODUCER,
            ),
            "sourceCodeLocation": source_code_location_job.SourceCodeLocationJobFacet(
                type="git",
                url="https://git.example.com/etl/blob/abc123/dags/orders.py",
                repoUrl="https://git.example.com/etl.git",
                path="dags/orders.py",
                version="abc123",
                branch="main",
                producer=PRODUCER,
            ),
            "documentation": documentation_job.DocumentationJobFacet(
                description="Loads the day's orders.", producer=PRODUCER
            ),
        },
    )


def _full_inputs() -> list[InputDataset]:
    """The inputs of ``event_full``: a versioned table with a nested schema, and a file."""
    return [
        InputDataset(
            namespace=PG,
            name="shop.public.orders",
            facets={
                "schema": schema_dataset.SchemaDatasetFacet(
                    fields=[
                        *_fields(("id", "INTEGER"), ("amount", "NUMERIC")),
                        schema_dataset.SchemaDatasetFacetFields(
                            name="customer", type="STRUCT", fields=_fields(("country", "TEXT"))
                        ),
                    ],
                    producer=PRODUCER,
                ),
                "version": dataset_version_dataset.DatasetVersionDatasetFacet(
                    datasetVersion="42", producer=PRODUCER
                ),
                "dataSource": datasource_dataset.DatasourceDatasetFacet(
                    name="shop", uri=f"{PG}/shop", producer=PRODUCER
                ),
            },
            inputFacets={
                "dataQualityMetrics": (
                    data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
                        rowCount=1000,
                        columnMetrics={
                            "amount": data_quality_metrics_input_dataset.ColumnMetrics(
                                nullCount=0, sum=1234.5
                            )
                        },
                        producer=PRODUCER,
                    )
                )
            },
        ),
        InputDataset(namespace="s3://lake", name="ref/countries.csv"),
    ]


def _full_outputs() -> list[OutputDataset]:
    """The output of ``event_full``, with its schema and output statistics."""
    return [
        OutputDataset(
            namespace="s3://warehouse",
            name="orders/daily",
            facets={
                "schema": schema_dataset.SchemaDatasetFacet(
                    fields=_fields(("day", "DATE"), ("total", "NUMERIC")), producer=PRODUCER
                )
            },
            outputFacets={
                "outputStatistics": (
                    output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                        rowCount=990, size=40960, producer=PRODUCER
                    )
                )
            },
        )
    ]


def event_required_only() -> RunEvent:
    """A RunEvent with only what the spec requires (no eventType, no datasets)."""
    return RunEvent(
        eventTime="2024-05-01T09:00:00Z",
        producer=PRODUCER,
        run=Run(runId="0190b4a4-2000-7000-8000-000000000002"),
        job=Job(namespace="cron", name="nightly"),
    )


def event_unicode() -> RunEvent:
    """A START whose names and fields are not ASCII (one outside the BMP)."""
    return RunEvent(
        eventType=RunState.START,
        eventTime="2024-05-01T11:00:00+02:00",
        producer=PRODUCER,
        run=Run(runId="0190b4a4-3000-7000-8000-000000000003"),
        job=Job(namespace="équipe-données", name="tâche.проверка"),
        inputs=[InputDataset(namespace="s3://données", name="ventes/été 2024/客户.parquet")],
        outputs=[
            OutputDataset(
                namespace="s3://données",
                name="rapports/📦 livraisons",
                facets={
                    "schema": schema_dataset.SchemaDatasetFacet(
                        fields=_fields(("société", "TEXT"), ("montant €", "NUMERIC")),
                        producer=PRODUCER,
                    )
                },
            )
        ],
    )


def dataset_event() -> DatasetEvent:
    """Static metadata about a dataset version."""
    return DatasetEvent(
        eventTime="2024-05-01T08:00:00Z",
        producer=PRODUCER,
        dataset=StaticDataset(
            namespace="bigquery",
            name="acme-prod.sales.orders",
            facets={
                "schema": schema_dataset.SchemaDatasetFacet(
                    fields=_fields(("order_id", "INT64"), ("placed_at", "TIMESTAMP")),
                    producer=PRODUCER,
                ),
                "version": dataset_version_dataset.DatasetVersionDatasetFacet(
                    datasetVersion="snapshot/2024-05-01", producer=PRODUCER
                ),
                "documentation": documentation_dataset.DocumentationDatasetFacet(
                    description="Every order.", producer=PRODUCER
                ),
            },
        ),
    )


def job_event() -> JobEvent:
    """Static metadata about a job: what it reads and writes, with no run."""
    return JobEvent(
        eventTime="2024-05-01T07:00:00Z",
        producer=PRODUCER,
        job=Job(
            namespace="dbt://acme",
            name="jaffle_shop.customers",
            facets={
                "sql": sql_job.SQLJobFacet(query="select * from raw_customers", producer=PRODUCER)
            },
        ),
        inputs=[InputDataset(namespace="bigquery", name="acme-prod.raw.customers")],
        outputs=[OutputDataset(namespace="bigquery", name="acme-prod.marts.customers")],
    )


BUILDERS: dict[str, Callable[[], Any]] = {
    "event_full.json": event_full,
    "event_required_only.json": event_required_only,
    "event_unicode.json": event_unicode,
    "dataset_event.json": dataset_event,
    "job_event.json": job_event,
}


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text(encoding="utf-8")))


def write_fixtures() -> None:
    """Write every fixture from its builder (``python -m tests.test_openlineage``)."""
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, build in BUILDERS.items():
        text = json.dumps(Serde.to_dict(build()), indent=2, ensure_ascii=False)
        (FIXTURES / name).write_text(text + "\n", encoding="utf-8")


# --- helpers ---------------------------------------------------------------------------------


def h8(*parts: str) -> str:
    """First 8 hex digits of sha256 over the parts joined by NUL."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]


def ingest(ledger: Ledger, doc: dict[str, Any], project: str = "p") -> list[StoredEvent]:
    """Map and append one OpenLineage event; return the events it appended."""
    head = ledger.head()
    ledger.append(ol.to_events(ledger, project, "ol-writer", doc), first_wins=True)
    return ledger.read(head + 1)


def kinds(events: list[StoredEvent]) -> list[tuple[str, str]]:
    return [(e.type, e.entity) for e in events]


def assert_reads_registered(appended: list[StoredEvent], run: str, node: str) -> None:
    """``appended`` starts ``run`` reading ``node``, a dataset version registered
    before (the event registers none)."""
    assert kinds(appended) == [
        ("run-started", f"run:{run}"),
        ("run-inputs-used", f"run:{run}"),
        ("openlineage-run-event", f"run:{run}"),
    ]
    assert appended[1].body == {"inputs": [node]}


def run_event(
    event_type: str | None,
    run: str,
    *,
    job: tuple[str, str] = ("sched", "job"),
    time: str = "2024-05-01T10:00:00Z",
    inputs: list[InputDataset] | None = None,
    outputs: list[OutputDataset] | None = None,
    run_facets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A RunEvent as the official client serialises it."""
    return Serde.to_dict(
        RunEvent(
            eventType=RunState(event_type) if event_type else None,
            eventTime=time,
            producer=PRODUCER,
            run=Run(runId=run, facets=run_facets or {}),
            job=Job(namespace=job[0], name=job[1]),
            inputs=inputs or [],
            outputs=outputs or [],
        )
    )


def versioned(namespace: str, name: str, version: str) -> dict[str, Any]:
    return {
        "version": dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=version, producer=PRODUCER
        )
    }


def as_start(doc: dict[str, Any]) -> dict[str, Any]:
    """The START of a COMPLETE: same run, job and datasets, earlier, no statistics."""
    start = copy.deepcopy(doc)
    start["eventType"] = "START"
    start["eventTime"] = "2024-05-01T10:00:00.000000+00:00"
    for output in start["outputs"]:
        output["outputFacets"] = {}
    return start


ORDERS = f"dataset:p/shop.public.orders-{h8(PG, 'shop.public.orders')}@42"
COUNTRIES = f"dataset:p/ref_countries.csv-{h8('s3://lake', 'ref/countries.csv')}@unversioned"
DAILY = f"dataset:p/orders_daily-{h8('s3://warehouse', 'orders/daily')}@run-{RUN.replace('-', '')}"


# The events ``event_full`` becomes when it is the run's first event (a COMPLETE adds the end).
FULL_EVENT_KINDS = [
    ("run-started", f"run:{PARENT}"),
    ("run-started", f"run:{RUN}"),
    ("dataset-version-registered", ORDERS),
    ("dataset-version-registered", COUNTRIES),
    ("run-inputs-used", f"run:{RUN}"),
    ("dataset-version-registered", DAILY),
    ("openlineage-run-event", f"run:{RUN}"),
]
# --- the fixtures are the client's ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_fixture_is_what_the_official_client_serialises(name: str) -> None:
    assert load(name) == Serde.to_dict(BUILDERS[name]()), (
        f"{name} differs from the client's output; regenerate: python -m tests.test_openlineage"
    )


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("event_full.json", "RunEvent"),
        ("event_required_only.json", "RunEvent"),
        ("event_unicode.json", "RunEvent"),
        ("dataset_event.json", "DatasetEvent"),
        ("job_event.json", "JobEvent"),
    ],
)
def test_validate_accepts_the_fixtures(name: str, kind: str) -> None:
    assert ol.validate(load(name)) == kind


def test_validate_accepts_a_minimal_hand_written_event() -> None:
    doc = {
        "eventTime": "2024-05-01T10:00:00.123456789-07:00",
        "producer": "urn:example:etl",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": RUN},
        "job": {"namespace": "n", "name": "j"},
    }
    assert ol.validate(doc) == "RunEvent"


def _broken(change: Callable[[dict[str, Any]], None], name: str = "event_full.json") -> Any:
    doc = load(name)
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (set_at("run.runId", "abc"), "run.runId: 'abc' is not a 'uuid'; expected a UUID"),
        (
            set_at("eventTime", "2024-05-01T10:00:00"),
            "eventTime: '2024-05-01T10:00:00' is not a 'date-time'; expected an RFC 3339",
        ),
        (set_at("producer", KeyError), "producer: is missing; it is required"),
        (set_at("schemaURL", KeyError), "schemaURL: is missing; it is required"),
        (set_at("eventType", "BEGIN"), "eventType: 'BEGIN' is not one of"),
        (set_at("job.name", KeyError), "job.name: is missing"),
        (set_at("inputs.1.namespace", 7), "inputs.1.namespace: 7 is not of type 'string'"),
        (
            set_at("job.facets.sql._producer", KeyError),
            "job.facets.sql._producer: is missing",
        ),
        (
            set_at("inputs.0.facets.version.datasetVersion", KeyError),
            "inputs.0.facets.version.datasetVersion: is missing",
        ),
        (
            set_at("run.facets.parent.run.runId", "parent"),
            "run.facets.parent.run.runId: 'parent' is not a 'uuid'",
        ),
        (
            set_at("outputs.0.outputFacets.outputStatistics.rowCount", "many"),
            "outputs.0.outputFacets.outputStatistics.rowCount: 'many' is not of type 'integer'",
        ),
    ],
)
def test_validate_rejects_a_bad_field_naming_it(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    with pytest.raises(FieldError) as info:
        ol.validate(_broken(change))
    assert str(info.value).startswith("invalid OpenLineage RunEvent: ")
    assert message in str(info.value)
    assert info.value.field == message.split(": ", 1)[0]


def _tricky() -> list[Any]:
    """Documents at the edges of the schemas: the fixtures, each broken field above, and
    values where two validators could disagree (formats, numbers, booleans, types)."""
    docs: list[Any] = [load(path.name) for path in sorted(FIXTURES.glob("*.json"))]
    for path in sorted((FIXTURES / "dbt").glob("*/*.jsonl")):
        docs += [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
    changes = [
        set_at("run.runId", "abc"),
        set_at("run.runId", "0190B4A4-1F00-7000-8000-0123456789AB"),
        set_at("run.runId", "0190b4a41f0070008000-0123456789abcd"),
        set_at("eventTime", "2024-05-01T10:00:00"),
        set_at("eventTime", "2024-02-30T10:00:00Z"),
        set_at("eventTime", "2024-05-01t10:00:00.5+01:00"),
        set_at("eventTime", "2024-05-01T25:00:00Z"),
        set_at("producer", "not a uri"),
        set_at("schemaURL", "relative/path"),
        set_at("producer", KeyError),
        set_at("eventType", "BEGIN"),
        set_at("eventType", None),
        set_at("inputs.1.namespace", 7),
        set_at("inputs.1.namespace", True),
        set_at("outputs.0.outputFacets.outputStatistics.rowCount", 1.0),
        set_at("outputs.0.outputFacets.outputStatistics.rowCount", 1.5),
        set_at("outputs.0.outputFacets.outputStatistics.rowCount", True),
        set_at("outputs.0.outputFacets.outputStatistics.rowCount", 10**30),
        set_at("outputs.0.outputFacets.outputStatistics.rowCount", float("nan")),
        set_at("run.facets.parent.run.runId", "parent"),
        set_at("job.facets.sql._producer", KeyError),
        set_at("inputs.0.facets.version.datasetVersion", KeyError),
        set_at("inputs", {}),
        set_at("job.facets", []),
    ]
    for change in changes:
        docs.append(_broken(change))
    return docs


def test_the_compiled_check_never_accepts_what_the_full_one_refuses() -> None:
    """Events and the facets the ledger reads are accepted by the compiled validator
    and judged by ``jsonschema`` when it does not accept them: the first must never
    take a document the second refuses."""
    compiled = validation.schemas()
    checkers = [(compiled.events[kind], None) for kind in compiled.events]
    for container in compiled.facets.values():
        checkers += [(checker, key) for key, checker in container.items()]
    accepted = refused = 0
    for doc in _tricky():
        facets = _all_facets(doc)
        for checker, key in checkers:
            instances = [doc] if key is None else [{key: f[key]} for f in facets if key in f]
            for instance in instances:
                try:
                    fast = checker.fast.is_valid(instance)
                except ValueError:
                    fast = False
                full = validation.best_match(checker.full.iter_errors(instance)) is None
                assert not fast or full, (key, instance)
                assert (checker.first_error(instance) is None) == full
                accepted += fast
                refused += not full
    assert accepted > 20 and refused > 10  # both sides were exercised
    # Every format the schemas name is checked by the compiled one as by jsonschema
    # (``uri`` by neither), so neither refuses what the other takes on a format.
    named = set()
    for path in ol.SCHEMAS.rglob("*.json"):
        named |= set(re.findall(r'"format":\s*"([^"]+)"', path.read_text("utf-8")))
    assert named and named <= set(validation._FAST_FORMATS), named
    relaxed = _broken(set_at("producer", "my-producer"))
    assert compiled.events["RunEvent"].fast.is_valid(relaxed)


def _all_facets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every facet map of an event (run, job, dataset, inputs' and outputs')."""
    holders = [doc.get(part) for part in ("run", "job", "dataset")]
    for side in ("inputs", "outputs"):
        if isinstance(doc.get(side), list):
            holders += doc[side]
    maps = []
    for holder in holders:
        if isinstance(holder, dict):
            maps += [holder.get("facets"), holder.get("outputFacets")]
    return [m for m in maps if isinstance(m, dict)]


def test_validate_rejects_documents_of_no_kind() -> None:
    with pytest.raises(InvalidInput, match="is a JSON object, got list") as info:
        ol.validate([])
    assert info.value.field == "body"
    with pytest.raises(LedgerError, match=r"expected 'run' and 'job' \(a RunEvent\), 'dataset'"):
        ol.validate({"eventTime": "2024-05-01T10:00:00Z"})
    both = {**load("job_event.json"), "dataset": {"namespace": "n", "name": "d"}}
    with pytest.raises(LedgerError, match="both 'job' and 'dataset'"):
        ol.validate(both)
    with pytest.raises(LedgerError, match=r"DatasetEvent: dataset.name: is missing"):
        ol.validate(_broken(set_at("dataset.name", KeyError), "dataset_event.json"))
    run_only = {k: v for k, v in load("event_full.json").items() if k != "job"}
    with pytest.raises(LedgerError, match="RunEvent: job: is missing"):
        ol.validate(run_only)


def test_to_events_validates_first(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match=r"run\.runId"):
        ol.to_events(ledger, "p", "w", _broken(set_at("run.runId", "abc")))
    assert ledger.head() == -1


# --- names --------------------------------------------------------------------------------------


def test_dataset_names_are_valid_deterministic_and_namespaced() -> None:
    assert (
        ol.dataset_name(PG, "shop.public.orders")
        == f"shop.public.orders-{h8(PG, 'shop.public.orders')}"
    )
    assert ol.dataset_name("a", "t") != ol.dataset_name("b", "t")
    assert ol.dataset_name("file", "/data/é t.csv") == f"data___t.csv-{h8('file', '/data/é t.csv')}"
    long = ol.dataset_name("s3://b", "x" * 300)
    assert len(long) == 128 and long.endswith("-" + h8("s3://b", "x" * 300))
    assert ol.dataset_name("n", "///") == h8("n", "///")
    assert ol.version_label("42") == "42"
    assert ol.version_label("snapshot/2024") == f"snapshot_2024-{h8('snapshot/2024')}"
    assert ol.version_label("") == h8("")
    assert len(ol.version_label("v" * 200)) == 128
    assert ol.job_name("dbt://acme", "a b") == f"a_b-{h8('dbt://acme', 'a b')}"


@pytest.mark.parametrize(
    ("namespace", "name", "uri"),
    [
        (PG, "shop.public.orders", f"{PG}/shop.public.orders"),
        ("s3://bucket", "path/to/file", "s3://bucket/path/to/file"),
        ("file", "/data/x.csv", "file:///data/x.csv"),
        ("hdfs://nn:8020", "/warehouse/t", "hdfs://nn:8020/warehouse/t"),
        ("inmemory://", "tmp", "inmemory://tmp"),
        ("bigquery", "p.d.t", "bigquery/p.d.t"),
    ],
)
def test_dataset_uri_follows_the_naming_spec(namespace: str, name: str, uri: str) -> None:
    assert ol.dataset_uri(namespace, name) == uri


def test_job_node_ids_parse_and_format() -> None:
    assert job_id("p", "jaffle.customers-1a2b3c4d") == "job:p/jaffle.customers-1a2b3c4d"
    parsed = NodeId.parse("job:p/nightly")
    assert (parsed.kind, parsed.project, parsed.name, parsed.version) == (
        "job",
        "p",
        "nightly",
        None,
    )
    assert str(parsed) == "job:p/nightly"
    with pytest.raises(InvalidNodeId, match=r"expected 'job:<project>/<name>'"):
        NodeId.parse("job:nightly")
    with pytest.raises(InvalidNodeId, match="job name"):
        job_id("p", "no spaces")


# --- ingestion ---------------------------------------------------------------------------------


def _start_full(ledger: Ledger) -> list[StoredEvent]:
    """Ingest ``event_full`` sent as a START; the events it appended."""
    return ingest(ledger, as_start(load("event_full.json")))


def _assert_started(started_parent: dict[str, Any], started: dict[str, Any]) -> None:
    """The run-started bodies of ``event_full``'s parent run and of its run."""
    parent = f"run:{PARENT}"
    assert started_parent["job"] == "orders_etl" and started_parent["parent_run"] is None
    assert started_parent["tags"] == {
        "openlineage.namespace": "airflow-prod",
        "openlineage.job": "orders_etl",
        "openlineage.first_event": "parent facet",
    }
    assert started["job"] == "orders_etl.load_orders" and started["parent_run"] == parent
    assert started["tags"] == {
        "openlineage.namespace": "airflow-prod",
        "openlineage.job": "orders_etl.load_orders",
        "openlineage.producer": PRODUCER,
        "openlineage.first_event": "START",
    }
    assert started["code"] == {
        "git_commit": "abc123",
        "git_branch": "main",
        "repo_url": "https://git.example.com/etl.git",
        "url": "https://git.example.com/etl/blob/abc123/dags/orders.py",
        "path": "dags/orders.py",
    }
    assert started["environment"] == {
        "processing_engine": {
            "name": "Airflow",
            "version": "2.9.1",
            "openlineage_adapter_version": "1.54.0",
        }
    }


def _assert_start_datasets(
    orders: dict[str, Any], countries: dict[str, Any], used: dict[str, Any], daily: dict[str, Any]
) -> None:
    """The datasets ``event_full`` registers and the inputs its run declares."""
    run = f"run:{RUN}"
    assert orders == {
        "name": f"shop.public.orders-{h8(PG, 'shop.public.orders')}",
        "version": "42",
        "digest": "openlineage:sha256:"
        + hashlib.sha256(f"{PG}\0shop.public.orders\x0042".encode()).hexdigest(),
        "uri": f"{PG}/shop.public.orders",
        "schema": {
            "id": "INTEGER",
            "amount": "NUMERIC",
            "customer": "STRUCT",
            "customer.country": "TEXT",
        },
        "row_count": None,
        "derived_from": [],
        "produced_by": None,
        "tags": {
            "openlineage.namespace": PG,
            "openlineage.name": "shop.public.orders",
            "openlineage.version": "42",
        },
    }
    assert countries["version"] == "unversioned" and countries["produced_by"] is None
    assert used == {"inputs": [ORDERS, COUNTRIES]}
    assert daily["produced_by"] == run and daily["uri"] == "s3://warehouse/orders/daily"
    assert daily["schema"] == {"day": "DATE", "total": "NUMERIC"} and daily["row_count"] is None


def _assert_kept_start(kept: dict[str, Any]) -> None:
    """The stored copy of ``event_full`` sent as a START."""
    assert (
        kept["event_type"] == "START" and kept["event_time"] == "2024-05-01T10:00:00.000000+00:00"
    )
    assert kept["job"]["facets"]["sql"]["query"] == "INSERT INTO daily SELECT * FROM orders"
    assert kept["run_facets"]["parent"]["job"] == {
        "namespace": "airflow-prod",
        "name": "orders_etl",
        "facets": {},
    }
    assert [(i["namespace"], i["name"], i["dataset"]) for i in kept["inputs"]] == [
        (PG, "shop.public.orders", ORDERS),
        ("s3://lake", "ref/countries.csv", COUNTRIES),
    ]
    assert kept["inputs"][0]["input_facets"]["dataQualityMetrics"]["rowCount"] == 1000
    assert kept["outputs"][0]["dataset"] == DAILY
    assert kept["redacted"] == [] and kept["stringified"] == []


def test_start_maps_to_run_datasets_and_inputs(ledger: Ledger) -> None:
    appended = _start_full(ledger)
    assert kinds(appended) == FULL_EVENT_KINDS
    started_parent, started, orders, countries, used, daily, kept = (e.body for e in appended)
    assert {e.actor for e in appended} == {"ol-writer"}
    assert {e.occurred_at for e in appended} == {"2024-05-01T10:00:00.000000Z"}
    _assert_started(started_parent, started)
    _assert_start_datasets(orders, countries, used, daily)
    _assert_kept_start(kept)


def test_complete_after_start_ends_the_run_with_its_lineage(ledger: Ledger) -> None:
    run, parent = f"run:{RUN}", f"run:{PARENT}"
    _start_full(ledger)
    appended = ingest(ledger, load("event_full.json"))
    assert kinds(appended) == [("openlineage-run-event", run), ("run-completed", run)]
    assert appended[0].body["event_type"] == "COMPLETE"
    assert appended[0].body["outputs"][0]["output_facets"]["outputStatistics"]["rowCount"] == 990
    assert appended[1].body == {} and appended[1].occurred_at == "2024-05-01T10:05:00.250000Z"
    status = queries.lineage(ledger, run, depth=1)
    assert {(e["src"], e["dst"], e["kind"]) for e in status["edges"]} == {
        (parent, run, "child"),
        (ORDERS, run, "input"),
        (COUNTRIES, run, "input"),
        (run, DAILY, "output"),
    }


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_sending_an_event_again_appends_nothing(ledger: Ledger, name: str) -> None:
    first = ingest(ledger, load(name))
    assert first, "the first sending appends events"
    head = ledger.head()
    batch = ol.to_events(ledger, "p", "ol-writer", load(name))
    assert [e.type for e in batch] == [
        first[-1].type if not first[-1].type.startswith("run-") else "openlineage-run-event"
    ]
    positions = ledger.append(batch, first_wins=True)
    assert ledger.head() == head
    assert positions == [next(e.position for e in first if e.type.startswith("openlineage-"))]


def test_two_events_of_one_run_start_it_once(ledger: Ledger) -> None:
    run = "0190b4a4-4000-7000-8000-000000000004"
    first = ingest(ledger, run_event("START", run))
    second = ingest(ledger, run_event("RUNNING", run, time="2024-05-01T10:01:00Z"))
    third = ingest(ledger, run_event("OTHER", run, time="2024-05-01T10:02:00Z"))
    assert kinds(first) == [("run-started", f"run:{run}"), ("openlineage-run-event", f"run:{run}")]
    assert kinds(second) == [("openlineage-run-event", f"run:{run}")]
    assert kinds(third) == [("openlineage-run-event", f"run:{run}")]
    assert [b.body["event_type"] for b in (first[1], second[0], third[0])] == [
        "START",
        "RUNNING",
        "OTHER",
    ]


def test_events_of_one_run_mapped_at_once_never_conflict(ledger: Ledger) -> None:
    # Two requests map their events before either is appended: each batch starts the
    # run and ends it; the deterministic ids let only one start and one end land.
    run = "0190b4a4-4100-7000-8000-000000000001"
    complete = ol.to_events(ledger, "p", "a", run_event("COMPLETE", run))
    failed = ol.to_events(ledger, "p", "b", run_event("FAIL", run, time="2024-05-01T10:01:00Z"))
    assert [e.type for e in complete] == ["run-started", "openlineage-run-event", "run-completed"]
    assert [e.type for e in failed] == ["run-started", "openlineage-run-event", "run-failed"]
    assert complete[0].event_id == failed[0].event_id
    assert complete[2].event_id == failed[2].event_id
    ledger.append(complete, first_wins=True)
    head = ledger.head()
    ledger.append(failed, first_wins=True)
    appended = ledger.read(head + 1)
    assert kinds(appended) == [("openlineage-run-event", f"run:{run}")]
    assert appended[0].body["event_type"] == "FAIL"
    graph = ol.marquez_graph(ledger, "p", "job:sched:job")
    assert graph["graph"][0]["data"]["latestRun"]["state"] == "COMPLETED"


def test_complete_before_start_is_recorded_in_order(ledger: Ledger) -> None:
    run = f"run:{RUN}"
    appended = ingest(ledger, load("event_full.json"))
    assert kinds(appended) == [*FULL_EVENT_KINDS, ("run-completed", run)]
    assert appended[1].body["tags"]["openlineage.first_event"] == "COMPLETE"
    assert appended[1].occurred_at == "2024-05-01T10:05:00.250000Z"
    assert appended[5].body["row_count"] == 990
    late_start = as_start(load("event_full.json"))
    late_start["inputs"].append({"namespace": "s3://lake", "name": "late.csv", "facets": {}})
    appended = ingest(ledger, late_start)
    # The run has ended: the ledger refuses inputs now, so only the new version is
    # registered and the event kept with its facets.
    late = f"dataset:p/late.csv-{h8('s3://lake', 'late.csv')}@unversioned"
    assert kinds(appended) == [
        ("dataset-version-registered", late),
        ("openlineage-run-event", run),
    ]
    assert appended[1].body["inputs"][2]["dataset"] == late


def test_dataset_version_facet_is_honoured(ledger: Ledger) -> None:
    run = "0190b4a4-5000-7000-8000-000000000005"
    doc = run_event(
        "COMPLETE",
        run,
        inputs=[
            InputDataset(namespace="s3://b", name="in", facets=versioned("s3://b", "in", "v 1/β"))
        ],
        outputs=[
            OutputDataset(namespace="s3://b", name="out", facets=versioned("s3://b", "out", "7"))
        ],
    )
    appended = ingest(ledger, doc)
    label = f"v_1__-{h8('v 1/β')}"
    source = f"dataset:p/in-{h8('s3://b', 'in')}@{label}"
    target = f"dataset:p/out-{h8('s3://b', 'out')}@7"
    assert kinds(appended) == [
        ("run-started", f"run:{run}"),
        ("dataset-version-registered", source),
        ("run-inputs-used", f"run:{run}"),
        ("dataset-version-registered", target),
        ("openlineage-run-event", f"run:{run}"),
        ("run-completed", f"run:{run}"),
    ]
    assert appended[1].body["tags"]["openlineage.version"] == "v 1/β"
    assert appended[1].body["produced_by"] is None
    assert appended[3].body["produced_by"] == f"run:{run}"
    # A later event naming a registered version reads it, registering nothing.
    again = "0190b4a4-5000-7000-8000-000000000006"
    appended = ingest(
        ledger,
        run_event(
            "START",
            again,
            inputs=[
                InputDataset(namespace="s3://b", name="out", facets=versioned("s3://b", "out", "7"))
            ],
        ),
    )
    assert_reads_registered(appended, again, target)


def test_input_without_version_facet_reads_the_latest_version(ledger: Ledger) -> None:
    writer1, writer2, reader = (f"0190b4a4-6000-7000-8000-00000000000{i}" for i in (1, 2, 3))
    out = OutputDataset(namespace="s3://b", name="t")
    name = f"t-{h8('s3://b', 't')}"
    first = ingest(ledger, run_event("COMPLETE", writer1, outputs=[out]))
    second = ingest(ledger, run_event("COMPLETE", writer2, outputs=[out]))
    v1 = f"dataset:p/{name}@run-{writer1.replace('-', '')}"
    v2 = f"dataset:p/{name}@run-{writer2.replace('-', '')}"
    assert ("dataset-version-registered", v1) in kinds(first)
    assert ("dataset-version-registered", v2) in kinds(second)
    appended = ingest(
        ledger, run_event("START", reader, inputs=[InputDataset(namespace="s3://b", name="t")])
    )
    assert_reads_registered(appended, reader, v2)


def test_unknown_input_is_registered_unversioned_once(ledger: Ledger) -> None:
    first, second = "0190b4a4-6100-7000-8000-000000000001", "0190b4a4-6100-7000-8000-000000000002"
    source = InputDataset(namespace="kafka://broker:9092", name="clicks")
    node = f"dataset:p/clicks-{h8('kafka://broker:9092', 'clicks')}@unversioned"
    appended = ingest(ledger, run_event("START", first, inputs=[source]))
    assert ("dataset-version-registered", node) in kinds(appended)
    assert appended[1].body["uri"] == "kafka://broker:9092/clicks"
    appended = ingest(ledger, run_event("START", second, inputs=[source]))
    assert_reads_registered(appended, second, node)


def test_parent_facet_builds_the_run_hierarchy(ledger: Ledger) -> None:
    dag, task = "0190b4a4-7000-7000-8000-000000000001", "0190b4a4-7000-7000-8000-000000000002"
    facet = {
        "parent": parent_run.ParentRunFacet(
            run=parent_run.Run(runId=dag),
            job=parent_run.Job(namespace="airflow", name="etl"),
            producer=PRODUCER,
        )
    }
    child = ingest(
        ledger, run_event("START", task, job=("airflow", "etl.extract"), run_facets=facet)
    )
    assert kinds(child) == [
        ("run-started", f"run:{dag}"),
        ("run-started", f"run:{task}"),
        ("openlineage-run-event", f"run:{task}"),
    ]
    assert child[0].body["job"] == "etl" and child[1].body["parent_run"] == f"run:{dag}"
    # The parent's own START arrives later: it is kept, the run is not started twice.
    own = ingest(ledger, run_event("START", dag, job=("airflow", "etl")))
    assert kinds(own) == [("openlineage-run-event", f"run:{dag}")]
    done = ingest(ledger, run_event("COMPLETE", dag, job=("airflow", "etl")))
    assert kinds(done) == [("openlineage-run-event", f"run:{dag}"), ("run-completed", f"run:{dag}")]
    edges = queries.lineage(ledger, f"run:{dag}", depth=1)["edges"]
    assert [(e["src"], e["dst"], e["kind"]) for e in edges] == [
        (f"run:{dag}", f"run:{task}", "child")
    ]
    graph = ol.marquez_graph(ledger, "p", "job:airflow:etl.extract")
    assert graph["graph"][0]["data"]["parentJobName"] == "etl"


def test_fail_keeps_the_error_type_never_the_message(ledger: Ledger) -> None:
    run = "0190b4a4-8000-7000-8000-000000000001"
    facets = {
        "errorMessage": error_message_run.ErrorMessageRunFacet(
            message="row for alice@example.com failed",
            programmingLanguage="PYTHON",
            stackTrace="Traceback: alice@example.com",
            producer=PRODUCER,
        )
    }
    appended = ingest(ledger, run_event("FAIL", run, run_facets=facets))
    assert kinds(appended) == [
        ("run-started", f"run:{run}"),
        ("openlineage-run-event", f"run:{run}"),
        ("run-failed", f"run:{run}"),
    ]
    assert appended[2].body == {"error_type": "openlineage.FAIL.PYTHON"}
    kept = appended[1].body
    assert kept["run_facets"]["errorMessage"] == {
        "_producer": PRODUCER,
        "_schemaURL": facets["errorMessage"]._schemaURL,
        "programmingLanguage": "PYTHON",
    }
    assert kept["redacted"] == [
        "run.facets.errorMessage.message",
        "run.facets.errorMessage.stackTrace",
    ]
    assert "alice" not in json.dumps([e.body for e in appended])
    # A COMPLETE after the FAIL ends nothing twice.
    assert kinds(ingest(ledger, run_event("COMPLETE", run, time="2024-05-01T10:09:00Z"))) == [
        ("openlineage-run-event", f"run:{run}")
    ]


def test_abort_fails_the_run(ledger: Ledger) -> None:
    run = "0190b4a4-8000-7000-8000-000000000002"
    appended = ingest(ledger, run_event("ABORT", run))
    assert kinds(appended)[-1] == ("run-failed", f"run:{run}")
    assert appended[-1].body == {"error_type": "openlineage.ABORT"}
    job = ol.marquez_graph(ledger, "p", "job:sched:job")["graph"][0]["data"]
    assert job["latestRun"]["state"] == "ABORTED"


def test_numbers_canonical_json_cannot_hold_become_strings(ledger: Ledger) -> None:
    run = "0190b4a4-8000-7000-8000-000000000003"
    doc = run_event("START", run)
    doc["run"]["facets"]["iceberg"] = {
        "_producer": PRODUCER,
        "_schemaURL": "urn:example:iceberg",
        "snapshotId": 2**63 - 1,
        "sizes": [1, 2**60],
    }
    appended = ingest(ledger, doc)
    kept = appended[-1].body
    assert kept["run_facets"]["iceberg"]["snapshotId"] == str(2**63 - 1)
    assert kept["run_facets"]["iceberg"]["sizes"] == [1, str(2**60)]
    assert kept["stringified"] == ["run.facets.iceberg.snapshotId", "run.facets.iceberg.sizes.1"]


def test_a_run_id_belongs_to_one_project(ledger: Ledger) -> None:
    run = "0190b4a4-8000-7000-8000-000000000004"
    ingest(ledger, run_event("START", run), project="p")
    head = ledger.head()
    with pytest.raises(Conflict, match="belongs to project 'p', not 'q'"):
        ol.to_events(ledger, "q", "ol-writer", run_event("COMPLETE", run))
    assert ledger.head() == head


def test_required_only_event_starts_the_run(ledger: Ledger) -> None:
    run = "run:0190b4a4-2000-7000-8000-000000000002"
    appended = ingest(ledger, load("event_required_only.json"))
    assert kinds(appended) == [("run-started", run), ("openlineage-run-event", run)]
    assert appended[0].body["job"] == "nightly"
    assert appended[0].body["tags"]["openlineage.first_event"] == "none"
    assert appended[1].body["event_type"] is None and appended[1].body["inputs"] == []


def test_unicode_names_are_made_safe_and_kept_as_sent(ledger: Ledger) -> None:
    run = "run:0190b4a4-3000-7000-8000-000000000003"
    doc = load("event_unicode.json")
    appended = ingest(ledger, doc)
    source = (
        f"dataset:p/ventes__t__2024___.parquet-"
        f"{h8('s3://données', 'ventes/été 2024/客户.parquet')}@unversioned"
    )
    target = (
        f"dataset:p/rapports___livraisons-{h8('s3://données', 'rapports/📦 livraisons')}"
        f"@run-{run[4:].replace('-', '')}"
    )
    assert kinds(appended) == [
        ("run-started", run),
        ("dataset-version-registered", source),
        ("run-inputs-used", run),
        ("dataset-version-registered", target),
        ("openlineage-run-event", run),
    ]
    assert appended[0].body["job"] == "tâche.проверка"
    assert appended[0].occurred_at == "2024-05-01T09:00:00.000000Z"
    assert appended[3].body["tags"]["openlineage.name"] == "rapports/📦 livraisons"
    assert appended[3].body["schema"] == {"société": "TEXT", "montant €": "NUMERIC"}
    assert appended[4].body["outputs"][0]["name"] == "rapports/📦 livraisons"
    node = "dataset:s3://données:rapports/📦 livraisons"
    assert ol.marquez_graph(ledger, "p", node, depth=0)["graph"][0]["id"] == node


def test_dataset_event_registers_its_version(ledger: Ledger) -> None:
    appended = ingest(ledger, load("dataset_event.json"))
    name = f"acme-prod.sales.orders-{h8('bigquery', 'acme-prod.sales.orders')}"
    version = f"snapshot_2024-05-01-{h8('snapshot/2024-05-01')}"
    node = f"dataset:p/{name}@{version}"
    assert kinds(appended) == [
        ("dataset-version-registered", node),
        ("openlineage-dataset-event", node),
    ]
    assert appended[0].body["schema"] == {"order_id": "INT64", "placed_at": "TIMESTAMP"}
    assert appended[0].body["uri"] == "bigquery/acme-prod.sales.orders"
    kept = appended[1].body
    assert (kept["namespace"], kept["name"]) == ("bigquery", "acme-prod.sales.orders")
    assert kept["facets"]["documentation"]["description"] == "Every order."


def test_job_event_registers_its_datasets(ledger: Ledger) -> None:
    appended = ingest(ledger, load("job_event.json"))
    raw = f"acme-prod.raw.customers-{h8('bigquery', 'acme-prod.raw.customers')}"
    marts = f"acme-prod.marts.customers-{h8('bigquery', 'acme-prod.marts.customers')}"
    job = f"job:p/jaffle_shop.customers-{h8('dbt://acme', 'jaffle_shop.customers')}"
    assert kinds(appended) == [
        ("dataset-version-registered", f"dataset:p/{raw}@unversioned"),
        ("dataset-version-registered", f"dataset:p/{marts}@unversioned"),
        ("openlineage-job-event", job),
    ]
    kept = appended[2].body
    assert kept["job"]["namespace"] == "dbt://acme"
    assert kept["job"]["facets"]["sql"]["query"] == "select * from raw_customers"
    assert [o["dataset"] for o in kept["outputs"]] == [f"dataset:p/{marts}@unversioned"]


# --- Marquez-shaped lineage ---------------------------------------------------------------


COPY_RUN = "0190b4a4-9000-7000-8000-000000000001"
COPY_NS = "postgres://db:5432"
COPY_SOURCE, COPY_TARGET = f"dataset:{COPY_NS}:shop.orders", "dataset:s3://b:orders"
COPY_JOB = "job:etl:copy"
COPY_AT, COPY_END = "2024-05-01T10:00:00.000000Z", "2024-05-01T10:00:02.000000Z"
COPY_OUT_VERSION = f"run-{COPY_RUN.replace('-', '')}"


def _ingest_copy(ledger: Ledger) -> None:
    """Job ``etl``/``copy`` starts, then completes reading a table and writing a file."""
    doc = run_event(
        "COMPLETE",
        COPY_RUN,
        job=("etl", "copy"),
        time="2024-05-01T10:00:02Z",
        inputs=[
            InputDataset(
                namespace=COPY_NS,
                name="shop.orders",
                facets={
                    "schema": schema_dataset.SchemaDatasetFacet(
                        fields=_fields(("id", "INT")), producer=PRODUCER
                    )
                },
            )
        ],
        outputs=[OutputDataset(namespace="s3://b", name="orders")],
    )
    ingest(ledger, run_event("START", COPY_RUN, job=("etl", "copy")))
    ingest(ledger, doc)


def _marquez_dataset(
    namespace: str,
    name: str,
    fields: list[dict[str, Any]],
    modified: str | None,
    current: str,
    facets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The DatasetData Marquez answers for a dataset of the copy job, registered at its
    end, with the dataset ``facets`` its events carried."""
    return {
        "id": {"namespace": namespace, "name": name},
        "type": "DB_TABLE",
        "name": name,
        "physicalName": name,
        "createdAt": COPY_END,
        "updatedAt": COPY_END,
        "namespace": namespace,
        "sourceName": namespace,
        "fields": fields,
        "tags": [],
        "lastModifiedAt": modified,
        "description": None,
        "lastLifecycleState": None,
        "facets": facets or {},
        "currentVersion": current,
        "mlledger": {"kind": "dataset", "versions": 1},
    }


def _marquez_version(namespace: str, name: str, version: str) -> dict[str, Any]:
    return {
        "datasetVersionId": {"namespace": namespace, "name": name, "version": version},
        "facets": {},
    }


def _copy_job_data(version: str) -> dict[str, Any]:
    """The JobData Marquez answers for the copy job, with its latest run."""
    return {
        "id": {"namespace": "etl", "name": "copy"},
        "type": "BATCH",
        "name": "copy",
        "simpleName": "copy",
        "parentJobName": None,
        "parentJobUuid": None,
        "currentRunUuid": COPY_RUN,
        "createdAt": COPY_AT,
        "updatedAt": COPY_END,
        "namespace": "etl",
        "inputs": [{"namespace": COPY_NS, "name": "shop.orders"}],
        "outputs": [{"namespace": "s3://b", "name": "orders"}],
        "location": None,
        "description": None,
        "latestRun": {
            "id": COPY_RUN,
            "createdAt": COPY_AT,
            "updatedAt": COPY_END,
            "nominalStartTime": None,
            "nominalEndTime": None,
            "state": "COMPLETED",
            "startedAt": COPY_AT,
            "endedAt": COPY_END,
            "durationMs": 2000,
            "args": {},
            "jobVersion": {"namespace": "etl", "name": "copy", "version": version},
            "inputDatasetVersions": [_marquez_version(COPY_NS, "shop.orders", "unversioned")],
            "outputDatasetVersions": [_marquez_version("s3://b", "orders", COPY_OUT_VERSION)],
            "facets": {},
        },
        "mlledger": {"kind": "job", "runs": 1},
    }


def _expected_copy_graph(version: str) -> dict[str, Any]:
    """The whole graph around the copy job: its two datasets and itself, sorted by id."""
    source, target, job = COPY_SOURCE, COPY_TARGET, COPY_JOB
    orders = f"dataset:p/shop.orders-{h8(COPY_NS, 'shop.orders')}@unversioned"
    out = f"dataset:p/orders-{h8('s3://b', 'orders')}@{COPY_OUT_VERSION}"
    id_field = [{"name": "id", "type": "INT", "tags": [], "description": None}]
    schema = {
        "_producer": PRODUCER,
        "_schemaURL": schema_dataset.SchemaDatasetFacet._get_schema(),
        "fields": [{"name": "id", "type": "INT", "fields": []}],
    }
    return {
        "graph": [
            {
                "id": source,
                "type": "DATASET",
                "data": _marquez_dataset(
                    COPY_NS, "shop.orders", id_field, None, orders, {"schema": schema}
                ),
                "inEdges": [],
                "outEdges": [{"origin": source, "destination": job}],
            },
            {
                "id": target,
                "type": "DATASET",
                "data": _marquez_dataset("s3://b", "orders", [], COPY_END, out),
                "inEdges": [{"origin": job, "destination": target}],
                "outEdges": [],
            },
            {
                "id": job,
                "type": "JOB",
                "data": _copy_job_data(version),
                "inEdges": [{"origin": source, "destination": job}],
                "outEdges": [{"origin": job, "destination": target}],
            },
        ]
    }


def test_marquez_graph_shows_the_job_between_its_datasets(ledger: Ledger) -> None:
    _ingest_copy(ledger)
    answer = ol.marquez_graph(ledger, "p", COPY_JOB)
    [job] = [n for n in answer["graph"] if n["type"] == "JOB"]
    # The job's version: a UUID of the datasets it read and wrote and its code.
    version = job["data"]["latestRun"]["jobVersion"]["version"]
    assert str(uuid.UUID(version)) == version
    expected = _expected_copy_graph(version)
    assert answer == expected
    # Asked from either dataset (the namespace holds ':'), the graph is the same.
    assert ol.marquez_graph(ledger, "p", COPY_SOURCE) == expected
    assert ol.marquez_graph(ledger, "p", COPY_TARGET, depth=1) == expected


def test_marquez_graph_of_depth_0_is_the_node_alone(ledger: Ledger) -> None:
    _ingest_copy(ledger)
    only = ol.marquez_graph(ledger, "p", COPY_SOURCE, depth=0)
    assert [n["id"] for n in only["graph"]] == [COPY_SOURCE]
    assert only["graph"][0]["outEdges"] == []


def test_marquez_graph_walks_hops_both_ways(ledger: Ledger) -> None:
    a = OutputDataset(namespace="s3://b", name="a")
    first, second = "0190b4a4-9100-7000-8000-000000000001", "0190b4a4-9100-7000-8000-000000000002"
    ingest(ledger, run_event("COMPLETE", first, job=("etl", "make_a"), outputs=[a]))
    ingest(
        ledger,
        run_event(
            "COMPLETE",
            second,
            job=("etl", "a_to_b"),
            inputs=[InputDataset(namespace="s3://b", name="a")],
            outputs=[OutputDataset(namespace="s3://b", name="b")],
        ),
    )
    ids = [n["id"] for n in ol.marquez_graph(ledger, "p", "dataset:s3://b:b")["graph"]]
    assert ids == ["dataset:s3://b:a", "dataset:s3://b:b", "job:etl:a_to_b", "job:etl:make_a"]
    near = [n["id"] for n in ol.marquez_graph(ledger, "p", "dataset:s3://b:b", depth=1)["graph"]]
    assert near == ["dataset:s3://b:a", "dataset:s3://b:b", "job:etl:a_to_b"]


def test_marquez_graph_shows_native_datasets_models_and_deployments(ledger: Ledger) -> None:
    reg = Registry(ledger, "p", "tester")
    raw = reg.register_dataset(
        "raw", "1", uri="s3://b/raw.csv", digest="sha256:aa", schema={"x": "int64"}
    )
    with reg.run("train", inputs=[raw]) as run:
        model = run.register_model("clf", "1", artifact_uri="s3://m/1", artifact_digest="sha256:bb")
    reg.deploy("api", endpoint="https://api.example.com", served={model: 100})
    graph = ol.marquez_graph(ledger, "p", "job:p:train")["graph"]
    assert [(n["id"], n["type"]) for n in graph] == [
        ("dataset:p:model/clf", "DATASET"),
        ("dataset:p:raw", "DATASET"),
        ("job:p:deployment/api", "JOB"),
        ("job:p:train", "JOB"),
    ]
    by_id = {n["id"]: n for n in graph}
    assert by_id["dataset:p:model/clf"]["outEdges"] == [
        {"origin": "dataset:p:model/clf", "destination": "job:p:deployment/api"}
    ]
    assert by_id["dataset:p:raw"]["data"]["fields"] == [
        {"name": "x", "type": "int64", "tags": [], "description": None}
    ]
    assert by_id["dataset:p:model/clf"]["data"]["currentVersion"] == model.id
    deployment = by_id["job:p:deployment/api"]["data"]
    assert deployment["type"] == "SERVICE" and deployment["latestRun"]["state"] == "COMPLETED"
    assert deployment["latestRun"]["inputDatasetVersions"] == [
        {"datasetVersionId": {"namespace": "p", "name": "model/clf", "version": "1"}, "facets": {}}
    ]
    assert by_id["job:p:train"]["data"]["latestRun"]["id"] == run.uuid


def test_marquez_graph_errors(ledger: Ledger) -> None:
    ingest(ledger, run_event("START", "0190b4a4-9200-7000-8000-000000000001"))
    with pytest.raises(NotFound, match="no dataset 'dataset:s3://x:y' in project 'p'"):
        ol.marquez_graph(ledger, "p", "dataset:s3://x:y")
    with pytest.raises(NotFound, match="no job"):
        ol.marquez_graph(ledger, "other", "job:sched:job")
    for bad in ("table:a:b", "dataset:only", "job", "run:0190b4a4-9200-7000-8000-000000000001"):
        with pytest.raises(InvalidNodeId, match="expected 'dataset:<namespace>:<name>'"):
            ol.marquez_graph(ledger, "p", bad)
    with pytest.raises(InvalidNodeId, match="depth -1"):
        ol.marquez_graph(ledger, "p", "job:sched:job", depth=-1)


# --- emission -----------------------------------------------------------------------------------


class _Ours(NamedTuple):
    """Ids of what ``_record_ours`` recorded: a dataset version, a run, its model."""

    raw: str
    run: str
    run_uuid: str
    model: str


def _record_ours(ledger: Ledger) -> _Ours:
    """A dataset, a run reading it and writing model clf 1, clf 2 written after the run
    ended, and a deployment of both, configured then retired."""
    reg = Registry(ledger, "p", "tester")
    raw = reg.register_dataset(
        "raw", "1", uri="s3://b/raw.csv", digest="sha256:aa", schema={"x": "int64"}, row_count=3
    )
    with reg.run("train", params={"C": 1.0}, inputs=[raw]) as run:
        run.log_metrics({"auc": 0.9})
        model = run.register_model(
            "clf", "1", artifact_uri="s3://m/1", artifact_digest="sha256:bb", framework="sklearn"
        )
    late = reg.register_model(
        "clf", "2", run=run.id, artifact_uri="s3://m/2", artifact_digest="sha256:cc"
    )
    reg.deploy("api", endpoint="https://api.example.com", served={model: 60, late: 40})
    reg.retire("api", reason="replaced")
    return _Ours(raw.id, run.id, run.uuid, model.id)


def _emitted(ledger: Ledger) -> tuple[_Ours, list[dict[str, Any]]]:
    """What ``_record_ours`` recorded, and the documents emitted for it."""
    ours = _record_ours(ledger)
    return ours, list(ol.emit(ledger, "p", producer="urn:test"))


def test_emit_sends_our_runs_models_and_deployments(ledger: Ledger) -> None:
    _record_ours(ledger)
    head = ledger.head()
    documents = list(ol.emit(ledger, "p", producer="urn:test"))
    assert ledger.head() == head
    for doc in documents:
        ol.validate(doc)
    summary = [
        (
            d.get("eventType", "DatasetEvent"),
            (d.get("job") or {}).get("name"),
            [i["name"] for i in d.get("inputs", [])],
            [o["name"] for o in d.get("outputs", [])],
        )
        for d in documents
    ]
    assert summary == [
        ("DatasetEvent", None, [], []),
        ("START", "train", [], []),
        ("COMPLETE", "train", ["raw"], ["model/clf"]),
        ("OTHER", "train", [], ["model/clf"]),
        ("COMPLETE", "deployment/api", ["model/clf", "model/clf"], []),
        ("COMPLETE", "deployment/api", [], []),
    ]


def test_emit_carries_dataset_run_and_model_facets(ledger: Ledger) -> None:
    ours, documents = _emitted(ledger)
    static, start, complete, other, _deployed, _retired = documents
    assert static["dataset"]["namespace"] == "p" and static["dataset"]["name"] == "raw"
    assert static["dataset"]["facets"]["version"]["datasetVersion"] == "1"
    assert static["dataset"]["facets"]["schema"]["fields"] == [{"name": "x", "type": "int64"}]
    assert static["dataset"]["facets"]["mlledger_dataset"]["digest"] == "sha256:aa"
    assert start["run"]["runId"] == ours.run_uuid and start["job"]["namespace"] == "p"
    ml_run = start["run"]["facets"]["mlledger_run"]
    assert ml_run["_producer"] == "urn:test"
    assert (
        ml_run["_schemaURL"]
        == "urn:mlledger:spec:facets:MlledgerRunFacet:1-0-0#/$defs/MlledgerRunFacet"
    )
    assert (ml_run["status"], ml_run["params"], ml_run["metrics"]) == ("running", {"C": 1.0}, {})
    assert set(ml_run["environment"]) >= {"python", "platform"}
    ml_run = complete["run"]["facets"]["mlledger_run"]
    assert (ml_run["status"], ml_run["metrics"]) == ("completed", {"auc": 0.9})
    assert complete["inputs"][0]["facets"]["mlledger_dataset"]["id"] == ours.raw
    ml_model = complete["outputs"][0]["facets"]["mlledger_model"]
    assert ml_model == {
        "_producer": "urn:test",
        "_schemaURL": "urn:mlledger:spec:facets:MlledgerModelFacet:1-0-0#/$defs/MlledgerModelFacet",
        "id": ours.model,
        "name": "clf",
        "version": "1",
        "artifact_uri": "s3://m/1",
        "artifact_digest": "sha256:bb",
        "framework": "sklearn",
        "run": ours.run,
        "tags": {},
    }
    assert complete["outputs"][0]["facets"]["version"]["datasetVersion"] == "1"
    assert other["outputs"][0]["facets"]["mlledger_model"]["version"] == "2"


def test_emit_carries_deployment_facets(ledger: Ledger) -> None:
    _ours, documents = _emitted(ledger)
    deployed, retired = documents[4:]
    facet = deployed["run"]["facets"]["mlledger_deployment"]
    assert (facet["endpoint"], facet["status"]) == ("https://api.example.com", "active")
    assert [(s["version"], s["traffic"]) for s in facet["served"]] == [("1", 60.0), ("2", 40.0)]
    facet = retired["run"]["facets"]["mlledger_deployment"]
    assert (facet["status"], facet["served"], facet["reason"]) == ("retired", [], "replaced")
    assert facet["endpoint"] == "https://api.example.com"
    assert deployed["run"]["runId"] != retired["run"]["runId"]


def test_emitted_ml_facets_are_checked_by_validate(ledger: Ledger) -> None:
    _ours, documents = _emitted(ledger)
    complete, deployed = documents[2], documents[4]
    broken = copy.deepcopy(complete)
    del broken["run"]["facets"]["mlledger_run"]["params"]
    with pytest.raises(LedgerError, match=r"run\.facets\.mlledger_run\.params: is missing"):
        ol.validate(broken)
    broken = copy.deepcopy(deployed)
    broken["run"]["facets"]["mlledger_deployment"]["served"][0]["traffic"] = 120
    with pytest.raises(LedgerError, match=r"mlledger_deployment\.served\.0\.traffic: 120"):
        ol.validate(broken)


def test_emit_again_gives_the_same_documents_and_since_skips(ledger: Ledger) -> None:
    _ours, documents = _emitted(ledger)
    # Emitting again gives the same documents; ``since`` skips what came before.
    assert list(ol.emit(ledger, "p", producer="urn:test")) == documents
    end = next(e.position for e in ledger.tail() if e.type == "run-completed")
    assert list(ol.emit(ledger, "p", since=end + 1, producer="urn:test")) == documents[3:]
    assert list(ol.emit(ledger, "elsewhere")) == []


def test_emit_keeps_openlineage_names_and_round_trips(ledger: Ledger, tmp_path: Path) -> None:
    ingest(ledger, as_start(load("event_full.json")))
    ingest(ledger, load("event_full.json"))
    ingest(ledger, load("job_event.json"))
    documents = list(ol.emit(ledger, "p"))
    for doc in documents:
        ol.validate(doc)
    runs = [d for d in documents if "run" in d and d["eventType"] != "OTHER"]
    assert [(d["eventType"], d["job"]["namespace"], d["job"]["name"]) for d in runs] == [
        ("START", "airflow-prod", "orders_etl"),
        ("START", "airflow-prod", "orders_etl.load_orders"),
        ("COMPLETE", "airflow-prod", "orders_etl.load_orders"),
    ]
    start, complete = runs[1], runs[2]
    assert start["run"]["runId"] == RUN
    assert start["run"]["facets"]["parent"]["run"]["runId"] == PARENT
    # The parent facet as it was sent.
    assert start["run"]["facets"]["parent"] == load("event_full.json")["run"]["facets"]["parent"]
    parent_job = start["run"]["facets"]["parent"]["job"]
    assert (parent_job["namespace"], parent_job["name"]) == ("airflow-prod", "orders_etl")
    assert [(i["namespace"], i["name"]) for i in complete["inputs"]] == [
        (PG, "shop.public.orders"),
        ("s3://lake", "ref/countries.csv"),
    ]
    assert complete["inputs"][0]["facets"]["version"]["datasetVersion"] == "42"
    assert "version" not in complete["inputs"][1]["facets"]
    assert complete["outputs"][0]["name"] == "orders/daily"
    job_events = [d for d in documents if d["schemaURL"].endswith("JobEvent")]
    assert len(job_events) == 1 and job_events[0]["job"] == load("job_event.json")["job"]
    # Another ledger reading the emitted events rebuilds the same lineage.
    copy_ledger = open_ledger(f"sqlite:///{tmp_path}/copy.db")
    try:
        for doc in documents:
            copy_ledger.append(ol.to_events(copy_ledger, "copy", "importer", doc), first_wins=True)
        node = "job:airflow-prod:orders_etl.load_orders"
        ours = ol.marquez_graph(ledger, "p", node)["graph"]
        theirs = ol.marquez_graph(copy_ledger, "copy", node)["graph"]
        assert [(n["id"], n["inEdges"], n["outEdges"]) for n in theirs] == [
            (n["id"], n["inEdges"], n["outEdges"]) for n in ours
        ]
    finally:
        copy_ledger.close()


def test_emit_carries_every_facet_received(ledger: Ledger) -> None:
    sent = load("event_full.json")
    ingest(ledger, as_start(sent))
    ingest(ledger, sent)
    documents = list(ol.emit(ledger, "p"))
    for doc in documents:
        ol.validate(doc)
    [complete] = [d for d in documents if d.get("eventType") == "COMPLETE"]
    assert complete["job"]["facets"] == sent["job"]["facets"]
    for name, facet in sent["run"]["facets"].items():
        assert complete["run"]["facets"][name] == facet, name
    assert "mlledger_run" in complete["run"]["facets"]
    for side, extra in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        emitted = {(d["namespace"], d["name"]): d for d in complete[side]}
        for dataset in sent[side]:
            out = emitted[(dataset["namespace"], dataset["name"])]
            for name, facet in dataset.get("facets", {}).items():
                assert out["facets"][name] == facet, (dataset["name"], name)
            for name, facet in dataset.get(extra, {}).items():
                assert out[extra][name] == facet, (dataset["name"], extra, name)
            assert "mlledger_dataset" in out["facets"]


def test_emit_leaves_out_facets_whose_personal_fields_were_redacted(ledger: Ledger) -> None:
    run = "0190b4a4-8000-7000-8000-000000000003"
    facets = {
        "errorMessage": error_message_run.ErrorMessageRunFacet(
            message="row for alice@example.com failed",
            programmingLanguage="PYTHON",
            producer=PRODUCER,
        ),
        "nominalTime": nominal_time_run.NominalTimeRunFacet(
            nominalStartTime="2024-05-01T10:00:00Z", producer=PRODUCER
        ),
    }
    ingest(ledger, run_event("FAIL", run, run_facets=facets))
    documents = list(ol.emit(ledger, "p"))
    for doc in documents:
        ol.validate(doc)
    [failed] = [d for d in documents if d.get("eventType") == "FAIL"]
    assert "errorMessage" not in failed["run"]["facets"]
    assert failed["run"]["facets"]["nominalTime"]["nominalStartTime"] == "2024-05-01T10:00:00Z"
    assert "alice" not in json.dumps(documents)


STATISTICS_URL = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet._get_schema()


def test_emit_sends_big_numbers_as_sent_and_never_a_producers_facet_as_ours(
    ledger: Ledger,
) -> None:
    run = "0190b4a4-8000-7000-8000-000000000004"
    doc = run_event("COMPLETE", run, outputs=[OutputDataset(namespace="s3://b", name="big")])
    output = doc["outputs"][0]
    output["outputFacets"] = {
        "outputStatistics": {
            "_producer": PRODUCER,
            "_schemaURL": STATISTICS_URL,
            "rowCount": 3,
            "size": 2**60,  # beyond what canonical JSON keeps as a number
        },
        "mlledger_model": {"_producer": PRODUCER, "_schemaURL": "urn:x#/$defs/X", "id": "forged"},
    }
    doc["job"]["facets"] = {
        "mlledger_run": {"_producer": PRODUCER, "_schemaURL": "urn:x#/$defs/X", "id": "forged"}
    }
    ol.validate(doc)
    stored = ingest(ledger, doc)
    assert next(e for e in stored if e.type == "openlineage-run-event").body["stringified"] == [
        "outputs.0.outputFacets.outputStatistics.size"
    ]
    documents = list(ol.emit(ledger, "p"))
    for emitted in documents:
        ol.validate(emitted)
    [complete] = [d for d in documents if d.get("eventType") == "COMPLETE"]
    sent = complete["outputs"][0]["outputFacets"]
    assert sent["outputStatistics"]["size"] == 2**60
    assert "mlledger_model" not in sent and "mlledger_run" not in complete["job"]["facets"]
    assert complete["run"]["facets"]["mlledger_run"]["id"] == f"run:{run}"
    feed = marquez.lineage_events(ledger, "p")["events"]
    assert feed[0]["outputs"][0]["outputFacets"]["outputStatistics"]["size"] == 2**60


def test_a_malformed_input_facet_breaks_no_answer(ledger: Ledger) -> None:
    for n, assertions in enumerate(([{"assertion": "not_null", "success": True}], 5)):
        doc = run_event(
            "COMPLETE",
            f"0190b4a4-8000-7000-8000-00000000001{n}",
            inputs=[InputDataset(namespace="s3://b", name="checked")],
        )
        doc["inputs"][0]["inputFacets"] = {
            "dataQualityAssertions": {
                "_producer": PRODUCER,
                "_schemaURL": "urn:x#/$defs/X",
                "assertions": assertions,
            }
        }
        appended = ingest(ledger, doc)
        assert [e.type for e in appended][-2:] == ["openlineage-run-event", "run-completed"]
    [node] = [
        n
        for n in ol.marquez_graph(ledger, "p", "dataset:s3://b:checked")["graph"]
        if n["type"] == "DATASET"
    ]
    assert node["data"]["facets"]["dataQualityAssertions"]["assertions"] == 5


def test_a_deep_chain_of_parents_makes_no_name_past_the_limit(ledger: Ledger) -> None:
    parent = None
    runs = [f"0190b4a4-8100-7000-8000-{i:012x}" for i in range(60)]
    for i, run in enumerate(runs):
        facets = {}
        if parent is not None:
            facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=parent),
                job=parent_run.Job(namespace="deep", name=f"step_{i - 1:02d}_" + "x" * 30),
            )
        appended = ingest(
            ledger,
            run_event(
                "COMPLETE", run, job=("deep", f"step_{i:02d}_" + "x" * 30), run_facets=facets
            ),
        )
        assert ("run-started", f"run:{run}") in kinds(appended)
        parent = run
    names = [j["name"] for j in marquez.jobs(ledger, "p", "deep", limit=1000, offset=0)["jobs"]]
    assert len(names) == 60
    assert max(map(len, names)) <= 1024
    assert any(name.count(".") > 10 for name in names)  # the chain is followed, up to the limit


def test_emit_rejects_a_bad_since(ledger: Ledger) -> None:
    with pytest.raises(FieldError, match="since -1") as info:
        list(ol.emit(ledger, "p", since=-1))
    assert info.value.field == "since"


if __name__ == "__main__":
    write_fixtures()
