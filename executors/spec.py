"""What a job is asked to be (``JobSpec``), the context its process gets from the
ledger (``RunContext``), and the names both sides derive from a run id.

A spec is checked when it is made: a clear error names the field that was wrong and
what was expected, before anything is submitted or appended.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from registry.errors import InvalidInput

#: Kubernetes quantities: '2', '500m', '1.5', '8Gi', '512Mi', '1e3'.
QUANTITY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?([eE][0-9]+|[kKMGTPE]i?|m)?$")
#: An environment variable's name.
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Label-value syntax (a GPU product such as NVIDIA-H100-80GB-HBM3).
LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
#: Variables the executor sets itself: a job may not set them.
RESERVED_ENV = frozenset(
    {
        "MLLEDGER_RUN_ID",
        "MLLEDGER_PROJECT",
        "MLLEDGER_DB",
        "MLLEDGER_API_KEY",
        "MLLEDGER_ACTOR",
        "TRACEPARENT",
    }
)
#: The prefix of every object an executor makes.
PREFIX = "mlledger-"


def object_name(run: str) -> str:
    """The name of every object made for run ``run`` (``run:<uuid>`` or ``<uuid>``): the
    same on every try, so a retried or resumed submission finds what an earlier one made."""
    return PREFIX + str(uuid.UUID(run.removeprefix("run:")))


def run_of(name: str) -> str | None:
    """The run id an object name was derived from, or None for another object."""
    if not name.startswith(PREFIX):
        return None
    try:
        return f"run:{uuid.UUID(name[len(PREFIX) :])}"
    except ValueError:
        return None


class Toleration(BaseModel):
    """A Kubernetes toleration: the job may run on nodes with this taint."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key: str = Field(min_length=1, max_length=253)
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = Field(default=None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None

    @classmethod
    def parse(cls, text: str) -> Toleration:
        """``key=value:Effect``, ``key:Effect`` or ``key`` (Exists)."""
        rest, _, effect = text.partition(":")
        key, eq, value = rest.partition("=")
        try:
            return cls(
                key=key,
                operator="Equal" if eq else "Exists",
                value=value if eq else None,
                effect=effect or None,  # type: ignore[arg-type]
            )
        except ValidationError as exc:
            raise InvalidInput(
                f"toleration {text!r}: expected KEY[=VALUE][:NoSchedule|PreferNoSchedule|"
                f"NoExecute] ({_first(exc)})",
                field="tolerations",
            ) from None


Quantity = Annotated[str, Field(max_length=32)]


class Placement(BaseModel):
    """What a job's or a served model's pods get and where they may run: environment,
    CPU, memory, ``nvidia.com/gpu`` count, GPU product (a node label) and tolerations.
    ``make`` checks a spec made from plain values."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    #: Variables the executor sets itself, which a spec may not set.
    RESERVED: ClassVar[frozenset[str]] = RESERVED_ENV
    #: What the spec is called in errors.
    WHAT: ClassVar[str] = "spec"
    env: dict[str, str] = Field(default_factory=dict)
    cpu: Quantity | None = None
    memory: Quantity | None = None
    gpus: int = Field(default=0, ge=0, le=1024)
    gpu_product: str | None = Field(default=None, min_length=1, max_length=63)
    tolerations: tuple[Toleration, ...] = ()

    @field_validator("cpu", "memory")
    @classmethod
    def _quantity(cls, value: str | None) -> str | None:
        if value is not None and not QUANTITY_RE.match(value):
            raise ValueError("expected a Kubernetes quantity such as 2, 500m, 8Gi or 512Mi")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not ENV_NAME_RE.match(name):
                raise ValueError(f"{name!r} is no environment variable name")
            if name in cls.RESERVED:
                raise ValueError(f"{name} is set by the executor itself")
        return value

    @field_validator("gpu_product")
    @classmethod
    def _product(cls, value: str | None) -> str | None:
        if value is not None and not LABEL_VALUE_RE.match(value):
            raise ValueError("expected a node label value such as NVIDIA-H100-80GB-HBM3")
        return value

    @classmethod
    def make(cls, **fields: Any) -> Self:
        """A spec from plain values; InvalidInput names the first field that is wrong."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"]) or "spec"
            raise InvalidInput(f"{cls.WHAT} {where}: {error['msg']}", field=where) from None


class JobSpec(Placement):
    """A training job: what runs, where, with what, for how long.

    ``job`` is the run's job name in the ledger; ``command`` runs in ``image`` (on
    Kubernetes) or on this host (local executor, which ignores ``image``); ``gpus``
    ``nvidia.com/gpu`` are requested per attempt, on nodes labelled with
    ``gpu_product`` when given; ``retries`` attempts follow a failed one; ``deadline_s``
    bounds the whole job; ``ttl_s`` is how long the platform keeps it after it ends.
    """

    WHAT = "job spec"
    job: str = Field(min_length=1, max_length=300)
    command: tuple[str, ...] = Field(min_length=1, max_length=64)
    image: str | None = Field(default=None, min_length=1, max_length=500)
    retries: int = Field(default=0, ge=0, le=100)
    deadline_s: int | None = Field(default=None, ge=1)
    ttl_s: int | None = Field(default=None, ge=0)
    params: dict[str, Any] = Field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Kubernetes: annotations of the job's pods."
    )
    workdir: str | None = Field(default=None, description="Local executor: where to run.")

    @field_validator("command")
    @classmethod
    def _command(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(len(part) > 4096 or "\x00" in part for part in value):
            raise ValueError("an argument is longer than 4096 characters or holds NUL")
        return value

    def resources(self) -> dict[str, Any]:
        """The ``resources`` of the job's ``job-submitted`` event."""
        return {
            "cpu": self.cpu,
            "memory": self.memory,
            "gpus": self.gpus,
            "gpu_product": self.gpu_product,
        }


class RunContext(BaseModel):
    """What a job's process needs to append to its run: the ledger it reaches (a
    server's URL, or a database URL for the local executor), the project, the run, the
    actor it appends as (who submitted it), an API key (sent through a Secret on
    Kubernetes, never in the pod spec), and the W3C ``traceparent`` of the submission."""

    model_config = ConfigDict(frozen=True)
    run: str
    project: str
    actor: str
    ledger_url: str
    api_key: str | None = None
    traceparent: str | None = None

    def environment(self, *, with_key: bool) -> dict[str, str]:
        """The variables the job's process gets (``MLLEDGER_*``, ``TRACEPARENT``); the API
        key only ``with_key``."""
        env = {
            "MLLEDGER_RUN_ID": self.run,
            "MLLEDGER_PROJECT": self.project,
            "MLLEDGER_ACTOR": self.actor,
            "MLLEDGER_DB": self.ledger_url,
        }
        if self.traceparent:
            env["TRACEPARENT"] = self.traceparent
        if with_key and self.api_key:
            env["MLLEDGER_API_KEY"] = self.api_key
        return env


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
