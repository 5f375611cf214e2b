"""``mlledger jobs ...``: submit training jobs through an executor, follow them, cancel
them, and keep the ledger's record of them up to date.

The executor is ``--executor local`` (processes on this host, the default) or
``kubernetes`` (Jobs in ``--namespace`` of the cluster of ``--kubeconfig``, or the
cluster this runs in). What a command prints about a job is what the ledger recorded
from the platform; ``status``, ``list`` and ``watch`` first record what the platform
reports now.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import TYPE_CHECKING, Any

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
from registry.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from executors.base import Executor
    from executors.dispatch import Dispatcher
    from registry.sdk import Registry


def add_cluster(p: argparse.ArgumentParser) -> None:
    """``--namespace``, ``--kubeconfig`` and ``--context``: where on Kubernetes."""
    p.add_argument(
        "--namespace", help="Kubernetes namespace (default: MLLEDGER_NAMESPACE or default)"
    )
    p.add_argument(
        "--kubeconfig",
        help="kubeconfig file (default: KUBECONFIG, ~/.kube/config, or the cluster this runs in)",
    )
    p.add_argument("--context", help="kubeconfig context (default: its current one)")


def _common(p: argparse.ArgumentParser) -> None:
    add_db(p)
    p.add_argument("--project", help=PROJECT_HELP)
    p.add_argument(
        "--executor",
        choices=("local", "kubernetes"),
        help="where jobs run (default: MLLEDGER_EXECUTOR or local)",
    )
    add_cluster(p)
    p.add_argument(
        "--jobs-dir",
        help="local executor: where job folders live (default: MLLEDGER_JOBS_DIR "
        "or .mlledger/jobs)",
    )


def _run_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "run",
        help="the job's run: run:UUID, UUID, or an OpenLineage job:NAMESPACE:NAME (its newest run)",
    )


def _submit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="the job's name (the run's job in the ledger)")
    p.add_argument(
        "argv",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND",
        help="the command and its arguments, after --",
    )
    p.add_argument("--image", help="container image (Kubernetes; the local executor ignores it)")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="environment")
    p.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="run parameter"
    )
    p.add_argument("--tag", action="append", default=[], metavar="NAME=VALUE", help="run tag")
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="ID",
        help="dataset or model version the job reads",
    )
    p.add_argument(
        "--annotation",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="Kubernetes: annotation of the job's pods",
    )
    p.add_argument("--cpu", help="CPU request (2, 500m)")
    p.add_argument("--memory", help="memory request and limit (8Gi)")
    p.add_argument("--gpus", type=whole_number, default=0, help="nvidia.com/gpu count")
    p.add_argument("--gpu-product", help="GPU product label value (NVIDIA-H100-80GB-HBM3)")
    p.add_argument(
        "--toleration",
        action="append",
        default=[],
        metavar="KEY[=VALUE][:EFFECT]",
        help="tolerate a node taint",
    )
    p.add_argument("--retries", type=whole_number, default=0, help="attempts after the first")
    p.add_argument("--deadline", type=whole_number, help="seconds the whole job may run")
    p.add_argument("--ttl", type=whole_number, help="seconds Kubernetes keeps it once ended")
    p.add_argument("--workdir", help="local executor: working directory (default: here)")
    p.add_argument(
        "--ledger-url",
        help="the ledger as the job reaches it (default: MLLEDGER_JOB_LEDGER_URL, else --db; "
        "a Kubernetes job needs the server's http(s) URL)",
    )
    p.add_argument("--wait", action="store_true", help="wait for the job to end")
    p.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")


def _reason(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reason", help="why, in a few words (recorded)")


def _follow(p: argparse.ArgumentParser) -> None:
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")


def _list_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--status",
        choices=(
            "submitted",
            "scheduled",
            "running",
            "retrying",
            "succeeded",
            "failed",
            "cancelled",
        ),
        help="only jobs in this status",
    )
    p.add_argument("--limit", type=whole_number, default=100, help="at most this many (100)")


def _watch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, help="stop after this many seconds (default: never)")


# --- the executor of a command ---------------------------------------------------------------


def executor_of(args: argparse.Namespace) -> Executor:
    """The executor the options and settings name."""
    settings = args.settings
    kind = args.executor or settings.executor
    if kind == "kubernetes":
        from executors.kubernetes.client import connect
        from executors.kubernetes.jobs import KubernetesExecutor

        namespace = args.namespace or settings.namespace
        return KubernetesExecutor(connect(args.kubeconfig, args.context), namespace)
    if kind != "local":
        raise InvalidInput(f"executor {kind!r}: expected local or kubernetes", field="executor")
    from executors.local import LocalExecutor

    return LocalExecutor(args.jobs_dir or settings.jobs_dir)


def dispatcher_of(args: argparse.Namespace, reg: Registry) -> Dispatcher:
    from executors.dispatch import Dispatcher
    from registry.settings import normalise_url

    executor = executor_of(args)
    url = (
        getattr(args, "ledger_url", None)
        or args.settings.job_ledger_url
        or normalise_url(args.db, args.settings)
    )
    if executor.kind == "kubernetes" and not url.startswith(("http://", "https://")):
        raise InvalidInput(
            f"a Kubernetes job reaches the ledger over HTTP: --ledger-url must be the "
            f"server's http(s) URL (mlledger serve), not {url.split('://')[0]}",
            field="ledger_url",
        )
    return Dispatcher(reg, executor, ledger_url=url, api_key=args.settings.api_key)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    found = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise InvalidInput(f"--{what} {item!r}: expected NAME=VALUE", field=what)
        found[name] = value
    return found


def spec_of(args: argparse.Namespace) -> Any:
    from executors.spec import JobSpec, Toleration

    command = list(args.argv)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise InvalidInput("no command to run: give it after --", field="command")
    return JobSpec.make(
        job=args.job,
        command=command,
        image=args.image,
        env=_pairs(args.env, "env"),
        cpu=args.cpu,
        memory=args.memory,
        gpus=args.gpus,
        gpu_product=args.gpu_product,
        tolerations=[Toleration.parse(t) for t in args.toleration],
        retries=args.retries,
        deadline_s=args.deadline,
        ttl_s=args.ttl,
        params=_pairs(args.param, "param"),
        inputs=args.input,
        tags=_pairs(args.tag, "tag"),
        annotations=_pairs(args.annotation, "annotation"),
        workdir=args.workdir,
    )


# --- commands --------------------------------------------------------------------------------


def cmd_submit(args: argparse.Namespace) -> int:
    """submit a training job as a new run

    Start a run in the ledger and dispatch its job: the job's process gets the run's
    context (MLLEDGER_RUN_ID, MLLEDGER_PROJECT, MLLEDGER_DB, TRACEPARENT, and the API key,
    on Kubernetes through a Secret), so the SDK inside it (registry.connect().job_run())
    records into the same run. Prints the run id; with --wait, waits for the end and
    exits 0 only if the job succeeded."""
    spec = spec_of(args)
    with open_registry(args) as reg:
        dispatcher = dispatcher_of(args, reg)
        submitted = dispatcher.submit(spec)
        data: dict[str, Any] = {
            "run": submitted.run,
            "name": submitted.name,
            "spec_digest": submitted.spec_digest,
            "position": submitted.position,
        }
        text = f"submitted {submitted.run} as {submitted.name} ({dispatcher.executor.target})"
        if args.wait:
            dispatcher.wait(submitted.run, timeout=args.timeout)
            job = reg.job(submitted.run)
            data["job"] = job
            text += "\n" + render_job(job)
            print_json_or_text(args, data, text)
            return 0 if job["status"] == "succeeded" else 1
    print_json_or_text(args, data, text)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """what the ledger recorded of a job, brought up to date

    Record what the platform reports now about the job, then print the ledger's record
    of it: status, node and GPUs it ran on, attempts, exit code and reason, and its
    events."""
    with open_registry(args) as reg:
        dispatcher = dispatcher_of(args, reg)
        run = _run(reg, args.run)  # NotFound before asking the platform about an unknown run
        _sync(dispatcher, run)
        job = reg.job(run)
    print_json_or_text(args, job, render_job(job, events=True))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """the project's jobs, newest first

    One line a job: its run, name, status, where it ran, and how it ended."""
    with open_registry(args) as reg:
        answer = reg.jobs(status=args.status, limit=args.limit)
    jobs = answer["jobs"]
    text = "\n".join(_line(j) for j in jobs) if jobs else "no jobs"
    print_json_or_text(args, answer, text)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    """print a job's output

    The output of the job's latest attempt, from the platform (the local executor's log
    file, or the pod's log on Kubernetes)."""
    with open_registry(args) as reg:
        executor = executor_of(args)
        run = _run(reg, args.run)
        for line in executor.logs(run, follow=args.follow):
            print(line, flush=args.follow)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """stop a job and record its cancellation

    Stop the job's attempts and remove its objects, then record job-cancelled (and the
    run failed). A job that already ended is left as it is (exit status 1)."""
    with open_registry(args) as reg:
        dispatcher = dispatcher_of(args, reg)
        run = _run(reg, args.run)
        cancelled = dispatcher.cancel(run, reason=args.reason)
        job = reg.job(run)
    text = f"cancelled {run}" if cancelled else f"{run} had already ended ({job['status']})"
    print_json_or_text(args, {"cancelled": cancelled, "job": job}, text)
    return 0 if cancelled else 1


def cmd_watch(args: argparse.Namespace) -> int:
    """record every transition of every job as it happens

    Kubernetes: list and watch the executor's Jobs and pods, recording each transition
    once (a restart lists again; nothing is recorded twice). Local: read every job's
    journal. Runs until interrupted, or for --seconds."""
    until = None if args.seconds is None else time.monotonic() + args.seconds
    with open_registry(args) as reg:
        dispatcher = dispatcher_of(args, reg)
        executor = dispatcher.executor
        stop = threading.Event()
        try:
            if executor.kind == "kubernetes":
                from executors.kubernetes.jobs import KubernetesExecutor
                from executors.kubernetes.watch import Watcher

                assert isinstance(executor, KubernetesExecutor)
                Watcher(dispatcher, executor).run(stop, until=until)
            else:
                while until is None or time.monotonic() < until:
                    for made in executor.made():
                        # A job whose end is recorded has nothing more to say.
                        if not dispatcher.known_ended(made.run):
                            dispatcher.sync(made.run)
                    time.sleep(0.5)
        except KeyboardInterrupt:
            stop.set()
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    """finish or clean up interrupted submissions

    Objects made for a run whose submission never reached the ledger are removed; a job
    recorded as submitted but never released is released."""
    with open_registry(args) as reg:
        dispatcher = dispatcher_of(args, reg)
        done = dispatcher.recover()
    text = f"removed {len(done['removed'])}, released {len(done['released'])}"
    print_json_or_text(args, done, text)
    return 0


def _run(reg: Registry, text: str) -> str:
    """The run ``text`` names (``run:UUID``, ``UUID`` or ``job:NAMESPACE:NAME``, that
    job's newest run), once its job is known to the ledger (NotFound otherwise)."""
    return str(reg.job(text)["run"])


def _sync(dispatcher: Dispatcher, run: str) -> None:
    """Record what the platform reports about ``run``, when it still knows the job."""
    try:
        dispatcher.sync(run)
    except NotFound:
        return  # gone from the platform: the ledger's record is all there is


def _line(job: dict[str, Any]) -> str:
    where = job.get("node") or "-"
    gpus = f" {job['gpus']} x {job.get('gpu_product') or 'GPU'}" if job.get("gpus") else ""
    end = ""
    if job.get("reason"):
        end = f" {job['reason']}"
    if job.get("exit_code") is not None:
        end += f" exit {job['exit_code']}"
    return f"{job['run']}  {job['status']:<10} {job['name']}  on {where}{gpus}{end}"


def _short(argument: str) -> str:
    """An argument as a line shows it: a long one (a script given with -c) cut short."""
    first = argument.strip().splitlines()[0] if argument.strip() else argument
    if first != argument.strip() or len(first) > 60:
        return repr(first[:57] + "...")
    return argument


def render_job(job: dict[str, Any], *, events: bool = False) -> str:
    """A job as text: what ``--json`` shows, line by line."""
    lines = [
        f"{job['run']} ({job['executor']} {job['target']}): {job['status']}",
        f"  name {job['name']}  image {job.get('image') or '-'}  spec {job['spec_digest']}",
        f"  command {' '.join(_short(part) for part in job['command'])}",
    ]
    if job.get("node"):
        lines.append(
            f"  ran on {job['node']} with {job.get('gpus') or 0} GPU(s)"
            + (f" ({job['gpu_product']})" if job.get("gpu_product") else "")
            + f", attempt {job.get('attempts') or 0}"
        )
    if job.get("reason") or job.get("exit_code") is not None:
        lines.append(
            f"  ended: {job.get('reason') or job['status']}, exit code {job.get('exit_code')}"
            + (f", last attempt {job['attempt_reason']}" if job.get("attempt_reason") else "")
        )
    if events:
        for event in job.get("events", []):
            lines.append(f"  {event['position']:>6}  {event['occurred_at']}  {event['type']}")
    return "\n".join(lines)


ACTIONS: tuple[Action, ...] = (
    ("submit", cmd_submit, (_submit_options,)),
    ("status", cmd_status, (_run_arg,)),
    ("list", cmd_list, (_list_options,)),
    ("logs", cmd_logs, (_run_arg, _follow)),
    ("cancel", cmd_cancel, (_run_arg, _reason)),
    ("watch", cmd_watch, (_watch_options,)),
    ("recover", cmd_recover, ()),
)
COMMANDS: dict[str, Command] = {name: command for name, command, _ in ACTIONS}


def add_parser(sub: Any) -> None:
    """The ``jobs`` command and its actions."""
    add_group(
        sub,
        "jobs",
        help="training jobs dispatched to an executor (local processes or Kubernetes)",
        description="Submit training jobs as runs, follow them, cancel them; the ledger "
        "records what the platform reports: where each ran (node, GPUs), when it started "
        "and how it ended (docs/executors.md).",
        dest="jobs_command",
        actions=ACTIONS,
        first=(_common,),
        last=(add_json,),
    )


def run(args: argparse.Namespace) -> int:
    return COMMANDS[args.jobs_command](args)
