"""``mlledger serve-model ...``: serve model versions through Kubernetes and keep the
ledger's record of what serves them.

Each ledger deployment is one Service in ``--namespace`` with one Deployment per model
version behind it; traffic splits by the ratio of ready replicas. The ledger records
what Kubernetes reports (``watch``), never what was asked: ``deploy``, ``scale``,
``shift`` and ``retire`` change the objects, then record what is ready once the
replicas settle (or leave it to a running ``watch``).
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import TYPE_CHECKING, Any

from executors.cli import add_cluster
from registry.commands import (
    PROJECT_HELP,
    Action,
    Command,
    add_db,
    add_group,
    add_json,
    open_registry,
    print_json_or_text,
    whole_number,
)
from registry.errors import InvalidInput

if TYPE_CHECKING:
    from executors.kubernetes.serving import ServingExecutor
    from registry.sdk import Registry


def _common(p: argparse.ArgumentParser) -> None:
    add_db(p)
    p.add_argument("--project", help=PROJECT_HELP)
    add_cluster(p)


def _name(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the deployment's name (or its id, deployment:PROJECT/NAME)")


def _models(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument(
        "--model",
        action="append",
        default=[],
        required=required,
        metavar="MODEL=REPLICAS",
        help="a model version (NAME@VERSION, NAME@ALIAS, NAME@latest, its id or "
        "dataset:<namespace>:model/<name>) and its replicas; repeat for several",
    )


def _deploy_options(p: argparse.ArgumentParser) -> None:
    _name(p)
    _models(p)
    p.add_argument("--image", required=True, help="the serving container's image")
    p.add_argument("--port", type=int, default=8080, help="the port it listens on (8080)")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="environment")
    p.add_argument("--cpu", help="CPU request per replica (2, 500m)")
    p.add_argument("--memory", help="memory request and limit per replica (8Gi)")
    p.add_argument("--gpus", type=whole_number, default=0, help="nvidia.com/gpu per replica")
    p.add_argument("--gpu-product", help="GPU product label value (NVIDIA-H100-80GB-HBM3)")
    p.add_argument(
        "--toleration",
        action="append",
        default=[],
        metavar="KEY[=VALUE][:EFFECT]",
        help="tolerate a node taint",
    )
    _settle(p)


def _settle(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the replicas to be ready before recording (60; 0: "
        "do not wait, leave it to a running watch)",
    )


def _scale_options(p: argparse.ArgumentParser) -> None:
    _name(p)
    p.add_argument(
        "model",
        help="the model version (NAME@VERSION, NAME@ALIAS, NAME@latest, its id or "
        "dataset:<namespace>:model/<name>)",
    )
    p.add_argument("replicas", type=whole_number, help="its replicas")
    _settle(p)


def _shift_options(p: argparse.ArgumentParser) -> None:
    _name(p)
    _models(p)
    p.add_argument("--image", help="image of a model version not served yet (default: as served)")
    _settle(p)


def _watch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, help="stop after this many seconds (default: never)")


# --- the executor of a command ---------------------------------------------------------------


def executor_of(args: argparse.Namespace, reg: Registry) -> ServingExecutor:
    from executors.kubernetes.client import connect
    from executors.kubernetes.serving import ServingExecutor

    namespace = args.namespace or args.settings.namespace
    return ServingExecutor(connect(args.kubeconfig, args.context), namespace, reg.project)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    found = {}
    for item in items:
        name, eq, value = item.rpartition("=")
        if not eq or not name:
            raise InvalidInput(f"--{what} {item!r}: expected NAME=VALUE", field=what)
        found[name] = value
    return found


def models_of(reg: Registry, items: list[str]) -> dict[str, int]:
    """``{model version id: replicas}`` from ``--model MODEL=REPLICAS`` options."""
    found: dict[str, int] = {}
    for model, replicas in _pairs(items, "model").items():
        if not replicas.isdigit():
            raise InvalidInput(
                f"--model {model}={replicas}: expected a whole number of replicas", field="model"
            )
        found[reg.backend.resolve_model(reg.project, model)] = int(replicas)
    return found


def spec_of(args: argparse.Namespace) -> Any:
    from executors.kubernetes.serving_render import ServingSpec
    from executors.spec import Toleration

    env = {}
    for item in args.env:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise InvalidInput(f"--env {item!r}: expected NAME=VALUE", field="env")
        env[name] = value
    return ServingSpec.make(
        image=args.image,
        port=args.port,
        env=env,
        cpu=args.cpu,
        memory=args.memory,
        gpus=args.gpus,
        gpu_product=args.gpu_product,
        tolerations=[Toleration.parse(t) for t in args.toleration],
    )


def settle(
    reg: Registry, executor: ServingExecutor, name: str, want: dict[str, int], timeout: float
) -> int:
    """Wait (up to ``timeout`` seconds) until Kubernetes reports ``want`` ready, then
    record what it reports; return how many events were appended."""
    from executors.kubernetes.serving import ServingWatcher

    if timeout <= 0:
        return 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = executor.report(name)
        ready = {m["model"]: m["ready"] for m in report["models"]}
        if all(ready.get(m, 0) == r for m, r in want.items()):
            break
        time.sleep(0.2)
    return record(reg, executor, name, ServingWatcher(reg, executor))


def record(reg: Registry, executor: ServingExecutor, name: str, watcher: Any) -> int:
    """Record what Kubernetes reports now of deployment ``name``."""
    dep = executor.deployment(name)
    watcher.cache = {o["metadata"]["name"]: o for o in executor.objects(dep)}
    return int(watcher.reconcile(dep))


# --- commands --------------------------------------------------------------------------------


def cmd_deploy(args: argparse.Namespace) -> int:
    """serve model versions behind a deployment

    Make (or change) the deployment's Service and one Deployment per model version
    with its replicas, then record the split of ready replicas Kubernetes reports
    (deployment-configured)."""
    spec = spec_of(args)
    with open_registry(args) as reg:
        models = models_of(reg, args.model)
        executor = executor_of(args, reg)
        names = executor.deploy(args.name, models, spec)
        settle(reg, executor, args.name, models, args.timeout)
        report = executor.report(args.name)
    print_json_or_text(args, {"objects": names, **report}, render_report(report))
    return 0


def cmd_scale(args: argparse.Namespace) -> int:
    """set the replicas of one model version

    Change the replicas of the Deployment serving the model version, then record the
    split Kubernetes reports once they are ready."""
    with open_registry(args) as reg:
        model = reg.backend.resolve_model(reg.project, args.model)
        executor = executor_of(args, reg)
        executor.scale(args.name, model, args.replicas)
        settle(reg, executor, args.name, {model: args.replicas}, args.timeout)
        report = executor.report(args.name)
    print_json_or_text(args, report, render_report(report))
    return 0


def cmd_shift(args: argparse.Namespace) -> int:
    """shift traffic between model versions (a canary)

    Set the replicas of several model versions at once: --model v1=4 --model v2=1 for
    80/20, then --model v1=0 --model v2=5. A version not served yet gets a Deployment
    like the others (or from --image). Records the split Kubernetes reports."""
    with open_registry(args) as reg:
        models = models_of(reg, args.model)
        executor = executor_of(args, reg)
        spec = None
        if args.image:
            from executors.kubernetes.serving_render import ServingSpec

            dep = executor.deployment(args.name)
            base = executor._spec_of(executor.objects(dep))
            fields = base.model_dump() if base else {}
            spec = ServingSpec.make(**{**fields, "image": args.image})
        executor.shift(args.name, models, spec)
        settle(reg, executor, args.name, models, args.timeout)
        report = executor.report(args.name)
    print_json_or_text(args, report, render_report(report))
    return 0


def cmd_retire(args: argparse.Namespace) -> int:
    """stop serving a deployment

    Delete its Deployments and its Service, then record deployment-retired once
    Kubernetes reports them gone. Exit 1 when there was nothing to delete."""
    from executors.kubernetes.serving import ServingWatcher

    with open_registry(args) as reg:
        executor = executor_of(args, reg)
        dep = executor.deployment(args.name)
        deleted = executor.retire(args.name)
        watcher = ServingWatcher(reg, executor)
        watcher.retiring.add(dep)
        deadline = time.monotonic() + max(args.timeout, 0)
        while executor.objects(dep) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not executor.objects(dep):
            record(reg, executor, args.name, watcher)
    text = f"retired {dep}" if deleted else f"nothing serves {dep}"
    print_json_or_text(args, {"deployment": dep, "deleted": deleted}, text)
    return 0 if deleted else 1


def cmd_status(args: argparse.Namespace) -> int:
    """what the ledger recorded of a deployment, and what Kubernetes reports now

    Record what Kubernetes reports of the deployment that the ledger does not hold yet,
    then print the ledger's history of it and the objects as Kubernetes reports them."""
    from executors.kubernetes.serving import ServingWatcher
    from registry.errors import NotFound

    with open_registry(args) as reg:
        executor = executor_of(args, reg)
        record(reg, executor, args.name, ServingWatcher(reg, executor))
        report = executor.report(args.name)
        try:
            history: dict[str, Any] | None = reg.history(executor.deployment(args.name))
        except NotFound:
            history = None
    text = render_report(report) + "\n" + render_history(history)
    print_json_or_text(args, {"ledger": history, "kubernetes": report}, text)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """record what serves each deployment as Kubernetes reports it

    List and watch the executor's Deployments; record each change of the split of
    ready replicas (deployment-configured), each change made by someone else
    (deployment-drifted) and each deployment whose objects are all gone
    (deployment-retired). A restart lists again; nothing is recorded twice. Runs
    until interrupted, or for --seconds."""
    from executors.kubernetes.serving import ServingWatcher

    until = None if args.seconds is None else time.monotonic() + args.seconds
    with open_registry(args) as reg:
        executor = executor_of(args, reg)
        stop = threading.Event()
        try:
            ServingWatcher(reg, executor).run(stop, until=until)
        except KeyboardInterrupt:
            stop.set()
    return 0


def render_report(report: dict[str, Any]) -> str:
    lines = [f"{report['deployment']}: {report.get('endpoint') or 'no endpoint'} (Kubernetes)"]
    for m in report["models"]:
        share = report["split"].get(m["model"])
        lines.append(
            f"  {m['model']}  {m['object']}  ready {m['ready']}/{m['replicas']}"
            f"  {share if share is not None else 0:g}%  {m['image']}"
        )
    if not report["models"]:
        lines.append("  no Deployment")
    return "\n".join(lines)


def render_history(history: dict[str, Any] | None) -> str:
    if history is None:
        return "ledger: nothing recorded"
    lines = [f"ledger: {history['status']}, {history.get('endpoint')}"]
    for i in history["intervals"]:
        lines.append(f"  {i['from']} .. {i['to'] or 'now'}  {i['model']}  {i['traffic']:g}%")
    return "\n".join(lines)


ACTIONS: tuple[Action, ...] = (
    ("deploy", cmd_deploy, (_deploy_options,)),
    ("scale", cmd_scale, (_scale_options,)),
    ("shift", cmd_shift, (_shift_options,)),
    ("retire", cmd_retire, (_name, _settle)),
    ("status", cmd_status, (_name,)),
    ("watch", cmd_watch, (_watch_options,)),
)
COMMANDS: dict[str, Command] = {name: command for name, command, _ in ACTIONS}


def add_parser(sub: Any) -> None:
    """The ``serve-model`` command and its actions."""
    add_group(
        sub,
        "serve-model",
        help="serve model versions through Kubernetes, recorded from what it reports",
        description="Deploy model versions behind a Service (traffic splits by ready "
        "replicas), scale them, shift traffic, retire them; the ledger records what "
        "Kubernetes reports, including changes made by others (docs/executors.md).",
        dest="serve_model_command",
        actions=ACTIONS,
        first=(_common,),
        last=(add_json,),
    )


def run(args: argparse.Namespace) -> int:
    return COMMANDS[args.serve_model_command](args)
