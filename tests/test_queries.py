"""The six lineage questions, on SQLite and PostgreSQL, against a known scenario."""

from __future__ import annotations

import pytest

from registry import NotFound, Registry
from registry.errors import InvalidNodeId
from tests.support.worlds import Scenario, day


def test_scored_lists_every_scoring_in_time_order(reg: Registry, world: Scenario) -> None:
    answer = reg.scored("rec-0")
    assert answer["times_scored"] == 3
    got = [(p["model"], p["deployment"], p["output"], p["trace_id"]) for p in answer["predictions"]]
    assert got == [
        (world.m1.id, world.api.id, 0.1, None),
        (world.m1.id, world.api.id, 0.3, "t-1"),
        (world.m2.id, world.api.id, {"label": "yes"}, "t-2"),
    ]
    assert [p["at"][:10] for p in answer["predictions"]] == [
        "2026-03-05",
        "2026-03-08",
        "2026-03-08",
    ]
    assert "rec-0" not in str(answer)  # answers name records by pseudonym only


def test_scored_record_in_a_dataset_but_never_scored_is_an_empty_answer(
    reg: Registry, world: Scenario
) -> None:
    assert reg.scored("rec-9") == {**reg.scored("rec-9"), "times_scored": 0, "predictions": []}


def test_scored_unknown_record_is_not_found(reg: Registry, world: Scenario) -> None:
    with pytest.raises(NotFound, match="no record with that key"):
        reg.scored("nobody")


def test_trained_on_is_transitive_with_record_counts(reg: Registry, world: Scenario) -> None:
    answer = reg.trained_on(world.m2)
    rows = {d["dataset"]: (d["relation"], d["depth"], d["records"]) for d in answer["datasets"]}
    assert rows == {
        world.clean.id: ("direct", 1, 6),
        world.extra.id: ("direct", 1, 2),
        world.raw.id: ("upstream", 2, 10),
    }
    assert answer["runs"] == [{"run": world.run2, "job": "train-b"}]


def test_trained_on_follows_base_models(reg: Registry, world: Scenario) -> None:
    # m3 was fine-tuned from m2: m2's training data trained m3 too, one step further
    # upstream (through m2's training run) than it is from m2, so none of it is direct.
    rows = {
        d["dataset"]: (d["relation"], d["depth"]) for d in reg.trained_on(world.m3)["datasets"]
    }
    assert rows == {
        world.clean.id: ("upstream", 2),
        world.extra.id: ("upstream", 2),
        world.raw.id: ("upstream", 3),
    }


def test_trained_on_accepts_name_version_and_alias(reg: Registry, world: Scenario) -> None:
    reg.set_alias(world.m1, "production", moved_by="ops")
    assert reg.trained_on("clf@1")["model"] == world.m1.id
    assert reg.trained_on("clf@production")["model"] == world.m1.id
    with pytest.raises(NotFound, match="clf@staging"):
        reg.trained_on("clf@staging")


def test_downstream_of_raw_reaches_everything_with_prediction_counts(
    reg: Registry, world: Scenario
) -> None:
    answer = reg.downstream(world.raw)
    assert [d["dataset"] for d in answer["datasets"]] == [world.clean.id]
    assert {r["run"] for r in answer["runs"]} >= {world.run1, world.run2}
    assert {m["model"] for m in answer["models"]} == {world.m1.id, world.m2.id, world.m3.id}
    assert [d["deployment"] for d in answer["deployments"]] == [world.api.id]
    counts = {p["model"]: p["count"] for p in answer["predictions"]}
    assert counts == {world.m1.id: 3, world.m2.id: 2}
    assert answer["total_predictions"] == 5


def test_downstream_of_extra_skips_the_first_model(reg: Registry, world: Scenario) -> None:
    models = {m["model"] for m in reg.downstream(world.extra)["models"]}
    assert models == {world.m2.id, world.m3.id}


def test_lineage_as_of_shows_the_graph_as_it_stood(reg: Registry, world: Scenario) -> None:
    then = reg.lineage(world.api, direction="upstream", depth=4, as_of=day(4))
    assert {n["id"] for n in then["nodes"]} == {world.api.id, world.m1.id, world.run1, world.raw.id}
    now = reg.lineage(world.api, direction="upstream", depth=4)
    served = {(e["src"], e["valid_to"] is None) for e in now["edges"] if e["kind"] == "serves"}
    assert served == {(world.m1.id, False), (world.m2.id, True)}
    mid = reg.lineage(world.api, direction="upstream", depth=1, as_of=day(7.5))
    assert {e["src"] for e in mid["edges"]} == {world.m1.id, world.m2.id}


def test_lineage_direction_and_depth(reg: Registry, world: Scenario) -> None:
    down = reg.lineage(world.raw, direction="downstream", depth=1)
    assert {n["id"] for n in down["nodes"]} == {world.raw.id, world.clean.id, world.run1}
    assert all(n["distance"] <= 1 for n in down["nodes"])
    up = reg.lineage(world.raw, direction="upstream", depth=5)
    assert [n["id"] for n in up["nodes"]] == [world.raw.id] and up["edges"] == []


def test_lineage_errors(reg: Registry, world: Scenario) -> None:
    with pytest.raises(NotFound, match="did not exist yet"):
        reg.lineage(world.m2, as_of=day(1))
    with pytest.raises(NotFound):
        reg.lineage("model:test/ghost@1")
    with pytest.raises(InvalidNodeId):
        reg.lineage("ghost")
    for depth in (-1, 2.5, "3", True):
        with pytest.raises(InvalidNodeId, match="expected a whole number, 0 or more"):
            reg.lineage(world.raw, depth=depth)  # type: ignore[arg-type]


def test_footprint_finds_every_trace_of_a_subject(reg: Registry, world: Scenario) -> None:
    reg.store_subject_data("ann", {"email": "ann@example.org"})
    answer = reg.footprint("ann")
    datasets = {d for r in answer["records"] for d in r["datasets"]}
    assert len(answer["records"]) == 3  # rec-0, rec-1 and x-1
    assert datasets == {world.raw.id, world.clean.id, world.extra.id}
    assert {m["model"] for m in answer["models"]} == {world.m1.id, world.m2.id, world.m3.id}
    assert [d["deployment"] for d in answer["deployments"]] == [world.api.id]
    assert len(answer["predictions"]) == 3  # rec-0 scored three times
    assert answer["vault_entries"] == 1
    assert "ann" not in str(answer)


def test_footprint_of_a_subject_only_in_extra(reg: Registry, world: Scenario) -> None:
    answer = reg.footprint("zed")
    assert answer["datasets"] == [{"dataset": world.extra.id, "label": "extra@1"}]
    assert {m["model"] for m in answer["models"]} == {world.m2.id, world.m3.id}
    assert [p["model"] for p in answer["predictions"]] == [world.m2.id]


def test_footprint_unknown_subject_is_not_found(reg: Registry, world: Scenario) -> None:
    with pytest.raises(NotFound, match="no data subject"):
        reg.footprint("nobody")


def test_history_lists_intervals_and_merged_spans(reg: Registry, world: Scenario) -> None:
    answer = reg.history("api")
    intervals = [
        (i["model"], i["traffic"], i["from"][:10], i["to"] and i["to"][:10])
        for i in answer["intervals"]
    ]
    assert intervals == [
        (world.m1.id, 100.0, "2026-03-04", "2026-03-08"),
        (world.m1.id, 50.0, "2026-03-08", "2026-03-09"),
        (world.m2.id, 50.0, "2026-03-08", "2026-03-09"),
        (world.m2.id, 100.0, "2026-03-09", None),
    ]
    spans = {
        m["model"]: [(s["from"][:10], s["to"] and s["to"][:10]) for s in m["spans"]]
        for m in answer["models"]
    }
    assert spans == {
        world.m1.id: [("2026-03-04", "2026-03-09")],
        world.m2.id: [("2026-03-08", None)],
    }
    reg.retire(world.api, reason="replaced", occurred_at=day(9))
    retired = reg.history(world.api)
    assert retired["status"] == "retired" and retired["intervals"][-1]["to"][:10] == "2026-03-10"
    event = reg.ledger.last_event()
    assert event is not None and event.type == "deployment-retired"
    assert event.entity == world.api.id and event.body == {"reason": "replaced"}


def test_history_unknown_deployment_is_not_found(reg: Registry, world: Scenario) -> None:
    with pytest.raises(NotFound, match="no deployment"):
        reg.history("ghost")


def test_answers_survive_a_rebuild(reg: Registry, world: Scenario) -> None:
    before = (
        reg.scored("rec-0"),
        reg.trained_on(world.m2),
        reg.footprint("ann"),
        reg.history(world.api),
        reg.lineage(world.api, as_of=day(7.5)),
    )
    digest = reg.ledger.projection_digest()
    assert reg.ledger.rebuild()["digest"] == digest
    after = (
        reg.scored("rec-0"),
        reg.trained_on(world.m2),
        reg.footprint("ann"),
        reg.history(world.api),
        reg.lineage(world.api, as_of=day(7.5)),
    )
    assert after == before


def test_alias_history_names_who_moved_what_when(reg: Registry, world: Scenario) -> None:
    reg.set_alias(world.m1, "production", moved_by="ana", occurred_at=day(3))
    reg.set_alias(world.m2, "production", moved_by="ben", occurred_at=day(8))
    moved = reg.ledger.last_event()
    assert moved is not None and (moved.type, moved.entity, moved.actor) == (
        "model-alias-moved", world.m2.id, "ben")
    answer = reg.aliases("clf")
    assert answer["current"] == {"production": world.m2.id}
    spans = [(s["model"], s["moved_by"], s["from"][:10], s["to"] and s["to"][:10])
             for s in answer["history"]["production"]]
    assert spans == [(world.m1.id, "ana", "2026-03-04", "2026-03-09"),
                     (world.m2.id, "ben", "2026-03-09", None)]
    with pytest.raises(NotFound, match="no model named 'ghost'"):
        reg.aliases("ghost")
