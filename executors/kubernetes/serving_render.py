"""The Kubernetes objects of a serving deployment, as plain manifests (no client needed).

A ledger deployment (``deployment:<project>/<name>``) is served by one ``apps/v1``
Deployment per model version it serves, and one Service whose selector matches the
pods of all of them. The Service spreads connections over every ready pod, so the
traffic a model version gets is its share of the ready replicas: 4 ready pods of v1
and 1 of v2 give an 80/20 split.

Names are derived from the ids, the same on every try: the Service is
``mlledger-<name>-<sha256 of the deployment id, 10 hex>``, each Deployment
``mlledger-<name>-<sha256 of the deployment and model ids, 10 hex>`` (``<name>`` made a
DNS label and cut short so that the whole is at most 63 characters). Every object
carries the labels ``app.kubernetes.io/managed-by=mlledger``,
``mlledger.io/component=serving``, ``mlledger.io/deployment=<hash>`` and (a
Deployment and its pods) ``mlledger.io/model=<hash>``, and the full ids as annotations.

A Deployment also carries what the executor asked of it (``mlledger.io/desired``:
replicas and image) and the spec it was made from (``mlledger.io/spec``), so a change
made by someone else can be told from the executor's own.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import Field

from executors.kubernetes.render import MANAGED_BY, place, resources
from executors.spec import PREFIX, Placement
from registry.errors import InvalidInput
from registry.ids import NodeId

COMPONENT = "mlledger.io/component"
DEPLOYMENT_LABEL = "mlledger.io/deployment"
MODEL_LABEL = "mlledger.io/model"
DEPLOYMENT_ANNOTATION = "mlledger.io/deployment-id"
MODEL_ANNOTATION = "mlledger.io/model-id"
PROJECT_ANNOTATION = "mlledger.io/project"
DESIRED_ANNOTATION = "mlledger.io/desired"
SPEC_ANNOTATION = "mlledger.io/spec"
PORT_ANNOTATION = "mlledger.io/port"
RETIRING_ANNOTATION = "mlledger.io/retiring"
#: What the serving executor lists and watches: its own Deployments and Services.
SERVING_SELECTOR = f"{MANAGED_BY}=mlledger,{COMPONENT}=serving"
#: The container serving a model version, and its port's name.
CONTAINER = "server"
PORT_NAME = "http"
#: The field manager of every write the executor makes.
FIELD_MANAGER = "mlledger"
#: Environment variables the executor sets in a serving container.
SERVING_ENV = frozenset({"MLLEDGER_DEPLOYMENT", "MLLEDGER_MODEL", "MLLEDGER_PROJECT"})

_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def digest(*parts: str, size: int = 10) -> str:
    """The first ``size`` hex digits of the sha256 of ``parts`` (joined by newlines)."""
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:size]


def _label(name: str, room: int) -> str:
    """``name`` as the middle of a DNS label: lowercase letters, digits and '-', at most
    ``room`` characters, no '-' at either end."""
    text = _NOT_DNS.sub("-", name.lower()).strip("-")
    return text[:room].strip("-") or "serving"


def _middle(deployment: str) -> str:
    return _label(NodeId.parse(deployment).name, 63 - len(PREFIX) - 11)


def service_name(deployment: str) -> str:
    """The Service of ledger deployment ``deployment`` (``deployment:<project>/<name>``)."""
    return f"{PREFIX}{_middle(deployment)}-{digest(deployment)}"


def deployment_name(deployment: str, model: str) -> str:
    """The Deployment serving model version ``model`` for ``deployment``."""
    return f"{PREFIX}{_middle(deployment)}-{digest(deployment, model)}"


def endpoint(deployment: str, namespace: str, port: int) -> str:
    """The in-cluster URL of the Service of ``deployment``."""
    return f"http://{service_name(deployment)}.{namespace}.svc.cluster.local:{port}"


def deployment_labels(deployment: str) -> dict[str, str]:
    return {
        MANAGED_BY: "mlledger",
        COMPONENT: "serving",
        DEPLOYMENT_LABEL: digest(deployment, size=20),
    }


def model_labels(deployment: str, model: str) -> dict[str, str]:
    return {**deployment_labels(deployment), MODEL_LABEL: digest(model, size=20)}


class ServingSpec(Placement):
    """How each model version of a deployment is served: the image (given the model's
    id in ``MLLEDGER_MODEL``), the port it listens on, resources per replica, and where
    it may run."""

    RESERVED = SERVING_ENV
    WHAT = "serving spec"
    image: str = Field(min_length=1, max_length=500)
    port: int = Field(default=8080, ge=1, le=65535)


def desired(replicas: int, image: str) -> str:
    """The ``mlledger.io/desired`` annotation: what the executor asked of a Deployment."""
    return json.dumps({"replicas": replicas, "image": image}, sort_keys=True)


def deployment_manifest(
    deployment: str, model: str, replicas: int, spec: ServingSpec, namespace: str
) -> dict[str, Any]:
    """The Deployment serving ``model`` for ``deployment`` with ``replicas`` pods."""
    if replicas < 0:
        raise InvalidInput(f"replicas of {model}: expected 0 or more", field="replicas")
    project = str(NodeId.parse(deployment).project)
    selector = {
        DEPLOYMENT_LABEL: digest(deployment, size=20),
        MODEL_LABEL: digest(model, size=20),
    }
    env = [{"name": k, "value": v} for k, v in sorted(spec.env.items())]
    env += [
        {"name": "MLLEDGER_DEPLOYMENT", "value": deployment},
        {"name": "MLLEDGER_MODEL", "value": model},
        {"name": "MLLEDGER_PROJECT", "value": project},
    ]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "ports": [{"name": PORT_NAME, "containerPort": spec.port, "protocol": "TCP"}],
        "env": env,
    }
    wanted = resources(spec)
    if wanted:
        container["resources"] = wanted
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [container],
    }
    place(pod, spec)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(deployment, model),
            "namespace": namespace,
            "labels": model_labels(deployment, model),
            "annotations": {
                DEPLOYMENT_ANNOTATION: deployment,
                MODEL_ANNOTATION: model,
                PROJECT_ANNOTATION: project,
                PORT_ANNOTATION: str(spec.port),
                DESIRED_ANNOTATION: desired(replicas, spec.image),
                SPEC_ANNOTATION: spec.model_dump_json(exclude_defaults=True),
            },
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": {COMPONENT: "serving", **selector},
                    "annotations": {MODEL_ANNOTATION: model},
                },
                "spec": pod,
            },
        },
    }


def service_manifest(deployment: str, port: int, namespace: str) -> dict[str, Any]:
    """The Service in front of every model version of ``deployment``: it selects the
    pods of all of them, so traffic splits by ready replicas."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(deployment),
            "namespace": namespace,
            "labels": deployment_labels(deployment),
            "annotations": {
                DEPLOYMENT_ANNOTATION: deployment,
                PROJECT_ANNOTATION: str(NodeId.parse(deployment).project),
                PORT_ANNOTATION: str(port),
            },
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {DEPLOYMENT_LABEL: digest(deployment, size=20)},
            "ports": [
                {"name": PORT_NAME, "port": port, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }
