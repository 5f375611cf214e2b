"""Batch items on the wire (``registry.intake.from_wire``) are read through pydantic
models; each refusal is an EventRejected naming the field, in the order the members
are checked, with the event's place, id and type."""

from __future__ import annotations

from typing import Any

import pytest

from registry import intake
from registry.errors import EventRejected

ID = "0b7c1f0e-6a57-4b0e-9a4a-6e0b6f0a1c11"
RECORDS = {
    "event_id": ID,
    "type": "dataset-records-added",
    "entity": "dataset:p/d@1",
    "actor": "me",
    "body": {"records": ["a", 1]},
}
PREDICTIONS = {
    **RECORDS,
    "type": "predictions-logged",
    "entity": "deployment:p/api",
    "body": {"models": ["model:p/m@1"], "records": ["a"], "outputs": [0.5]},
}
SUBJECT = {
    **RECORDS,
    "type": "subject-data-stored",
    "entity": "subject:p/x",
    "body": {"subject": "ann", "attributes": {"email": "a@b"}},
}
RUN = {**RECORDS, "type": "run-started", "entity": "run:" + ID, "body": {"job": "train"}}


def _refusal(item: dict[str, Any], actor: str | None = None) -> EventRejected:
    with pytest.raises(EventRejected) as refused:
        intake.from_wire(item, 4, project="p", actor=actor)
    assert refused.value.index == 4
    return refused.value


@pytest.mark.parametrize(
    ("item", "field", "message"),
    [
        ({**RECORDS, "event_id": "nope"}, "event_id", "expected a UUID"),
        ({**RECORDS, "body": []}, "body", "expected an object"),
        ({**RECORDS, "actor": ""}, "actor", "expected a non-empty string"),
        ({**RECORDS, "trace_id": 5}, "trace_id", "expected a string or null"),
        ({**RECORDS, "occurred_at": 5}, "occurred_at", "expected an RFC 3339 time"),
        ({**RECORDS, "occurred_at": "soon"}, "occurred_at", "is not a time"),
        ({**RECORDS, "entity": None}, "entity", "expected a node id string"),
        ({**RECORDS, "type": 5}, "type", "expected an event type name"),
        ({**RECORDS, "type": "nope"}, "type", "unknown event type 'nope'"),
        ({**RECORDS, "type": "subject-erased"}, "type", "only by the erasure process"),
        ({**RECORDS, "body": {}}, "body.records", "field required"),
        ({**RECORDS, "body": {"records": "a"}}, "body.records", "expected a list"),
        ({**RECORDS, "body": {"records": ["a", ""]}}, "body.records.1", "record key is empty"),
        (
            {**RECORDS, "body": {"records": ["a"], "subjects": [1.5]}},
            "body.subjects.0",
            "subject id is a float",
        ),
        ({**PREDICTIONS, "body": {}}, "body.models", "field required"),
        (
            {**PREDICTIONS, "body": {**PREDICTIONS["body"], "models": [1]}},
            "body.models",
            "expected a list of model version ids",
        ),
        (
            {**PREDICTIONS, "body": {**PREDICTIONS["body"], "model_index": [True]}},
            "body.model_index",
            "expected a list of integers or null",
        ),
        (
            {**PREDICTIONS, "body": {**PREDICTIONS["body"], "at": [1]}},
            "body.at",
            "expected an RFC 3339 time, a list of them, or null",
        ),
        (
            {**PREDICTIONS, "body": {**PREDICTIONS["body"], "trace_ids": [1]}},
            "body.trace_ids",
            "expected a list of strings or nulls",
        ),
        ({**SUBJECT, "body": {"subject": True}}, "body.subject", "subject id is a bool"),
        ({**SUBJECT, "body": {"subject": "ann"}}, "body.attributes", "field required"),
        (
            {**SUBJECT, "body": {"subject": "ann", "attributes": {}}},
            "body.attributes",
            "expected a non-empty object",
        ),
        ({**RUN, "body": {}}, "body.job", "Field required"),
        ({**RUN, "entity": "dataset:p/d@1"}, "entity", "is a dataset id, expected a run id"),
        ({**RUN, "entity": "nonsense"}, "entity", "node id 'nonsense' has no kind"),
    ],
)
def test_each_refusal_names_its_field(item: dict[str, Any], field: str, message: str) -> None:
    refused = _refusal(item)
    assert refused.field == field and message in str(refused), refused
    assert refused.event_type == (item["type"] if isinstance(item["type"], str) else "?")


def test_the_first_problem_in_member_order_is_named() -> None:
    refused = _refusal({**RECORDS, "actor": "", "entity": None, "body": {}})
    assert refused.field == "actor"
    refused = _refusal({**PREDICTIONS, "body": {"records": [""], "models": "x"}})
    assert refused.field == "body.models"


def test_the_event_id_is_named_as_sent_when_it_is_no_uuid() -> None:
    assert _refusal({**RECORDS, "event_id": "nope"}).event_id == "nope"
    assert _refusal({**RECORDS, "event_id": None}).event_id == "?"
    upper = _refusal({**RECORDS, "event_id": ID.upper(), "actor": ""})
    assert upper.event_id == ID


def test_well_formed_items_become_descriptions_and_events() -> None:
    records = intake.from_wire(RECORDS, 0, project="p", actor="server-key")
    assert isinstance(records, intake.RecordsAdded)
    assert (records.records, records.subjects, records.actor) == (["a", 1], None, "server-key")
    predictions = intake.from_wire(PREDICTIONS, 0, project="p")
    assert isinstance(predictions, intake.Predictions) and predictions.outputs == [0.5]
    subject = intake.from_wire(SUBJECT, 0, project="p")
    assert isinstance(subject, intake.SubjectData) and subject.attributes == {"email": "a@b"}
    event = intake.from_wire(RUN, 0, project="p")
    assert event.type == "run-started" and event.event_id == ID
    assert intake.to_wire(records)["body"] == {"records": ["a", 1], "subjects": None}
    assert set(intake.WIRE_BODIES) == set(intake.PERSONAL_TYPES)
