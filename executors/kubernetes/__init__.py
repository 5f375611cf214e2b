"""Kubernetes: training jobs as ``batch/v1`` Jobs on (simulated or real) GPU nodes, and
serving deployments as Deployments behind a Service.

- ``render``: the Job and Secret manifests of a job (no client needed);
- ``observe``: what a Job and its pods report, as transitions;
- ``client``: ``connect`` and the base of the executors (their errors made clear);
- ``jobs``: ``KubernetesExecutor``, training jobs on the official client;
- ``watch``: the watcher that records every transition of every job as it happens;
- ``serving_render``: the Deployments and Service of a serving deployment;
- ``serving``: ``ServingExecutor`` (deploy, scale, shift, retire) and
  ``ServingWatcher``, which records what serves each deployment, and drift.

``role.yaml`` is the least-privilege Role the executor needs (docs/executors.md).
"""
