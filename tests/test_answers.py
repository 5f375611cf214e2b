"""Every answer a question gives holds what its model declares.

The queries hand their answers out as built (``Shape.built``), without validating
them again, so these tests are what keeps each answer true to its model and to the
OpenAPI document: every question, on the query scenario and after an erasure, is
validated member by member against its model, and its JSON form must validate too.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from lineage import queries
from lineage.answers import Shape
from registry import Registry
from tests.support.worlds import Scenario, day


def check(answer: Shape) -> dict[str, Any]:
    """Validate ``answer`` as held (every part, exactly as the query built it) and as
    sent (its JSON form); return the JSON form."""
    kind = type(answer)
    held = kind.model_validate(dict(answer))
    with warnings.catch_warnings():
        # A member of an unexpected type warns while it is serialized.
        warnings.simplefilter("error")
        sent = answer.model_dump(mode="json")
    assert held.model_dump(mode="json") == sent
    assert kind.model_validate(sent).model_dump(mode="json") == sent
    return sent


def every_answer(reg: Registry, world: Scenario) -> list[Shape]:
    ledger, project = reg.ledger, reg.project
    return [
        queries.scored(ledger, project, "rec-0"),
        queries.scored(ledger, project, "rec-9"),
        queries.trained_on(ledger, world.m3.id),
        queries.trained_on(ledger, world.m2.id, visible={"elsewhere"} | {project}),
        queries.downstream(ledger, world.raw.id),
        queries.lineage(ledger, world.m2.id, depth=5),
        queries.lineage(ledger, world.api.id, direction="upstream", when=day(3.5)),
        queries.footprint(ledger, project, "ann"),
        queries.history(ledger, world.api.id),
        queries.aliases(ledger, project, "clf"),
    ]


def test_every_answer_holds_what_its_model_declares(reg: Registry, world: Scenario) -> None:
    reg.set_alias(world.m1, "production", moved_by="ana", occurred_at=day(3))
    reg.set_alias(world.m2, "production", moved_by="ben", occurred_at=day(8))
    sent = [check(answer) for answer in every_answer(reg, world)]
    assert sent[0]["times_scored"] == 3 and len(sent[0]["predictions"]) == 3
    assert sent[2]["datasets"] and sent[4]["runs"] and sent[5]["edges"]
    assert sent[7]["records"] and sent[7]["predictions"]
    assert [len(s["spans"]) for s in sent[8]["models"]] == [1, 1]
    assert set(sent[9]["history"]) == {"production"}


def test_answers_after_an_erasure_hold_what_their_models_declare(
    reg: Registry, world: Scenario
) -> None:
    reg.erase("ann")
    completed = reg.ledger.last_event()
    assert completed is not None and completed.type == "subject-erased"
    ledger, project = reg.ledger, reg.project
    footprint = check(queries.footprint(ledger, project, "ann"))
    assert footprint["erased"]["position"] == completed.position
    scored = check(queries.scored(ledger, project, "rec-0"))
    assert scored["record"] is None and scored["erased"]["position"] == completed.position
    lineage = check(queries.lineage(ledger, footprint["subject"]))
    assert lineage["nodes"] == [] and lineage["erased"] == footprint["erased"]
    for answer in every_answer(reg, world):
        check(answer)


@pytest.mark.parametrize("member", ["runs", "datasets"])
def test_a_part_of_the_wrong_shape_fails_the_check(
    reg: Registry, world: Scenario, member: str
) -> None:
    answer = queries.trained_on(reg.ledger, world.m2.id)
    broken = type(answer).built(**{**dict(answer), member: [{"unexpected": 1}]})
    with pytest.raises(Exception, match=r"unexpected|Field required"):
        check(broken)
