"""Kubernetes: training jobs as ``batch/v1`` Jobs on (simulated or real) GPU nodes.

- ``render``: the Job and Secret manifests of a job (no client needed);
- ``observe``: what a Job and its pods report, as transitions;
- ``jobs``: ``KubernetesExecutor`` on the official client, and ``connect``;
- ``watch``: the watcher that records every transition of every job as it happens.

``role.yaml`` is the least-privilege Role the executor needs (docs/executors.md).
"""
