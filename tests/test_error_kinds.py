"""The one table of problem kinds: each error class names its kind (slug, status,
title); the API answers an error with its class's kind and field, and the HTTP client
raises the class a kind names, with the field, so a round trip gives back the error."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from registry import errors
from registry.api.problems import API_KINDS, KINDS, PREFIX, from_ledger_error
from registry.client import _raise

CLASSES = [
    errors.InvalidInput,
    errors.InvalidNodeId,
    errors.EventRejected,
    errors.NotFound,
    errors.Conflict,
    errors.ConfigError,
    errors.Unauthenticated,
    errors.Forbidden,
    errors.IntegrityViolation,
]


def test_every_kind_names_one_class() -> None:
    assert errors.kinds() == {cls.slug: cls for cls in CLASSES}
    assert errors.error_for("invalid-input") is errors.InvalidInput  # not the base class
    # ConfigError, not NoLedger, which only inherits its kind:
    assert errors.error_for("unavailable") is errors.ConfigError
    assert errors.error_for("invalid-request") is None and errors.error_for("nonsense") is None
    assert errors.NoLedger.slug == "unavailable" and errors.FieldError.slug == "invalid-input"


def test_the_api_table_is_the_classes_and_its_own_kinds() -> None:
    assert not set(API_KINDS) & set(errors.kinds())
    assert {**{c.slug: (c.status, c.title) for c in CLASSES}, **API_KINDS} == KINDS


def _answer(problem: dict[str, Any]) -> httpx.Response:
    """The HTTP answer the API gives for ``problem``."""
    body = {
        "type": PREFIX + problem.pop("slug"),
        "status": problem["status"],
        "detail": problem.pop("detail"),
        **problem,
    }
    return httpx.Response(int(body["status"]), json=body)


def _round_trip(exc: errors.LedgerError) -> errors.LedgerError:
    """``exc`` as the API answers it, raised again by the client."""
    found = from_ledger_error(exc)
    problem = {"slug": found.slug, "status": found.status, "detail": found.detail}
    with pytest.raises(errors.LedgerError) as raised:
        _raise(_answer({**problem, **found.extensions}))
    return raised.value


@pytest.mark.parametrize(
    "exc",
    [
        errors.NotFound("no such model"),
        errors.Conflict("already there"),
        errors.InvalidNodeId("node id 'x' has no kind"),
        errors.ConfigError("store gone"),
        errors.NoLedger("no ledger here"),
        errors.IntegrityViolation("hash differs"),
        errors.Unauthenticated("no key"),
        errors.Forbidden("wrong project"),
        errors.InvalidInput("bad input"),
        errors.LedgerError("refused as the base class"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_error_comes_back_as_the_class_its_kind_names(exc: errors.LedgerError) -> None:
    back = _round_trip(exc)
    assert type(back) is errors.error_for(exc.slug) and str(back) == str(exc)
    assert from_ledger_error(exc).status == exc.status


def test_a_field_travels_with_the_error() -> None:
    problem = from_ledger_error(errors.FieldError("params.lr", "is nan"))
    assert (problem.slug, problem.status, problem.extensions) == (
        "invalid-input",
        400,
        {"field": "params.lr"},
    )
    back = _round_trip(errors.FieldError("params.lr", "is nan"))
    assert type(back) is errors.FieldError and back.field == "params.lr" and str(back) == "is nan"
    assert "field" not in from_ledger_error(errors.InvalidInput("no field known")).extensions
    assert "field" not in from_ledger_error(errors.NotFound("x")).extensions


def test_a_refused_event_keeps_its_place_id_and_reason() -> None:
    exc = errors.EventRejected(2, "e-1", "run-started", "body.job", "field required")
    problem = from_ledger_error(exc)
    assert problem.status == 422 and problem.extensions == {
        "field": "body.job",
        "index": 2,
        "event_id": "e-1",
        "event_type": "run-started",
        "reason": "field required",
    }
    back = _round_trip(exc)
    assert isinstance(back, errors.EventRejected)
    assert (back.index, back.event_id, back.event_type, back.field, back.message) == (
        2,
        "e-1",
        "run-started",
        "body.job",
        "field required",
    )
    assert str(back) == str(exc)


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        ({"slug": "invalid-request", "status": 422, "field": "events.0"}, errors.FieldError),
        ({"slug": "invalid-request", "status": 422}, errors.InvalidInput),
        ({"slug": "payload-too-large", "status": 413}, errors.LedgerError),
        ({"slug": "internal", "status": 500}, errors.LedgerError),
        ({"slug": "too-many-requests", "status": 429}, errors.LedgerError),
        ({"slug": "nonsense", "status": 401}, errors.Unauthenticated),
        ({"slug": "nonsense", "status": 403}, errors.Forbidden),
    ],
)
def test_the_apis_own_kinds_and_statuses(problem: dict[str, Any], expected: type) -> None:
    with pytest.raises(errors.LedgerError) as raised:
        _raise(_answer({**problem, "detail": "what went wrong"}))
    assert type(raised.value) is expected and str(raised.value) == "what went wrong"
    if expected is errors.FieldError:
        assert isinstance(raised.value, errors.FieldError) and raised.value.field == "events.0"


def test_an_answer_that_is_not_a_problem_is_the_base_class() -> None:
    with pytest.raises(errors.LedgerError, match="HTTP 502 from the server") as raised:
        _raise(httpx.Response(502, text="<html>bad gateway</html>"))
    assert type(raised.value) is errors.LedgerError


def test_the_module_has_no_other_kinds() -> None:
    declared = {
        cls.slug
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.LedgerError) and "slug" in vars(cls)
    }
    assert declared == set(errors.kinds())
