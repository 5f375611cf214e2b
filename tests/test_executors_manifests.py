"""The Kubernetes side without a cluster: the manifests a job renders (validated offline
against Kubernetes 1.37's schemas, strictly, so a misspelt field fails), and the
transitions read from Jobs and pods as the API server sends them."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from executors.dispatch import spec_digest
from executors.kubernetes.observe import transitions
from executors.kubernetes.render import job_manifest, secret_manifest
from executors.spec import JobSpec, RunContext, Toleration, object_name
from registry.errors import InvalidInput

RUN = "run:0f1e2d3c-4b5a-4968-8776-655443322110"
CONTEXT = RunContext(
    run=RUN,
    project="vision",
    actor="ana",
    ledger_url="https://ledger.example",
    api_key="mlk_secret_value",
    traceparent="00-0f1e2d3c4b5a49688776655443322110-00f067aa0ba902b7-01",
)
GPU_SPEC = JobSpec(
    job="train-resnet",
    command=("python", "train.py", "--epochs", "3"),
    image="registry.example/train:1.4",
    env={"DATA": "s3://bucket/imagenet"},
    cpu="4",
    memory="16Gi",
    gpus=2,
    gpu_product="NVIDIA-H100-80GB-HBM3",
    tolerations=(Toleration.parse("dedicated=ml:NoSchedule"),),
    retries=2,
    deadline_s=3600,
    ttl_s=600,
)


def test_a_gpu_job_renders_a_valid_suspended_job_with_its_context() -> None:
    job = job_manifest(GPU_SPEC, CONTEXT, "ml")
    kubernetes_validate.validate(job, "1.37.0", strict=True)
    assert job["metadata"]["name"] == object_name(RUN)
    spec = job["spec"]
    assert spec["suspend"] is True
    assert (
        spec["backoffLimit"],
        spec["activeDeadlineSeconds"],
        spec["ttlSecondsAfterFinished"],
    ) == (
        2,
        3600,
        600,
    )
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"},
        "limits": {"memory": "16Gi", "nvidia.com/gpu": "2"},
    }
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["MLLEDGER_RUN_ID"]["value"] == RUN
    assert env["MLLEDGER_PROJECT"]["value"] == "vision"
    assert env["MLLEDGER_DB"]["value"] == "https://ledger.example"
    assert env["TRACEPARENT"]["value"].startswith("00-0f1e2d3c")
    assert env["DATA"]["value"] == "s3://bucket/imagenet"
    # The API key travels through the job's Secret, never as a value in the pod spec.
    assert env["MLLEDGER_API_KEY"] == {
        "name": "MLLEDGER_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": object_name(RUN), "key": "api-key"}},
    }
    assert "mlk_secret_value" not in json.dumps(job)
    assert pod["automountServiceAccountToken"] is False


def test_the_secret_is_owned_by_its_job_and_valid() -> None:
    secret = secret_manifest(RUN, "ml", "mlk_secret_value", "uid-1")
    kubernetes_validate.validate(secret, "1.37.0", strict=True)
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", object_name(RUN), "uid-1")


def test_the_digest_is_of_the_exact_manifest() -> None:
    one = job_manifest(GPU_SPEC, CONTEXT, "ml")
    assert spec_digest(one) == spec_digest(json.loads(json.dumps(one)))
    other = job_manifest(GPU_SPEC.model_copy(update={"gpus": 1}), CONTEXT, "ml")
    assert spec_digest(other) != spec_digest(one)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"memory": "lots"}, "memory"),
        ({"env": {"MLLEDGER_RUN_ID": "x"}}, "env"),
        ({"gpu_product": "H100 80GB"}, "gpu_product"),
        ({"retries": -1}, "retries"),
        ({"command": ()}, "command"),
    ],
)
def test_a_bad_spec_names_its_field(fields: dict[str, Any], field: str) -> None:
    base = {"job": "j", "command": ("true",), "image": "img"}
    with pytest.raises(InvalidInput) as caught:
        JobSpec.make(**{**base, **fields})
    assert caught.value.field == field


def test_a_kubernetes_job_needs_an_image() -> None:
    with pytest.raises(InvalidInput, match="needs an image"):
        job_manifest(JobSpec(job="j", command=("true",)), CONTEXT, "ml")


def _pod(name: str, phase: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": status.pop("created", "2026-12-05T10:00:00Z"),
            "labels": {"batch.kubernetes.io/job-name": object_name(RUN)},
        },
        "spec": {
            "nodeName": "gpu-node-1",
            "containers": [{"name": "job", "resources": {"limits": {"nvidia.com/gpu": "2"}}}],
        },
        "status": {
            "phase": phase,
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastTransitionTime": "2026-12-05T10:00:01Z",
                }
            ],
            **status,
        },
    }


def _terminated(code: int, reason: str, finished: str) -> dict[str, Any]:
    return {
        "containerStatuses": [
            {
                "name": "job",
                "state": {
                    "terminated": {
                        "exitCode": code,
                        "reason": reason,
                        "startedAt": "2026-12-05T10:00:02Z",
                        "finishedAt": finished,
                    }
                },
            }
        ]
    }


def test_an_oom_killed_attempt_then_backoff_reads_as_kubernetes_reported_it() -> None:
    pod = _pod("p-1", "Failed", **_terminated(137, "OOMKilled", "2026-12-05T10:00:09Z"))
    job = {
        "metadata": {"name": object_name(RUN), "annotations": {"mlledger.io/run-id": RUN}},
        "status": {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "lastTransitionTime": "2026-12-05T10:00:10Z",
                }
            ]
        },
    }
    found = transitions(job, [pod], lambda node: "NVIDIA-H100-80GB-HBM3")
    assert [(t.type, t.body) for t in found] == [
        (
            "job-scheduled",
            {
                "attempt": "p-1",
                "node": "gpu-node-1",
                "gpus": 2,
                "gpu_product": "NVIDIA-H100-80GB-HBM3",
            },
        ),
        ("job-started", {"attempt": "p-1"}),
        ("job-attempt-failed", {"attempt": "p-1", "exit_code": 137, "reason": "OOMKilled"}),
        (
            "job-failed",
            {"reason": "BackoffLimitExceeded", "exit_code": 137, "attempt_reason": "OOMKilled"},
        ),
    ]
    assert all(t.run == RUN for t in found)
    # Read again, the same transitions with the same event ids.
    assert [t.event_id for t in found] == [
        t.event_id for t in transitions(job, [pod], lambda node: "NVIDIA-H100-80GB-HBM3")
    ]


def test_a_preempted_pod_says_so() -> None:
    pod = _pod("p-2", "Failed")
    pod["status"]["conditions"].append(
        {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "PreemptionByScheduler",
            "lastTransitionTime": "2026-12-05T10:00:05Z",
        }
    )
    found = transitions(None, [pod], lambda node: None)
    assert found[-1].type == "job-attempt-failed"
    assert found[-1].body == {"attempt": "p-2", "exit_code": None, "reason": "Preempted"}
