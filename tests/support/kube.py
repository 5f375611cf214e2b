"""A real Kubernetes control plane for the test-suite, with simulated GPU nodes.

The Kubernetes executor (``executors/kubernetes/``) is tested against a real API server,
real controllers and a real scheduler; only the nodes are simulated. Nothing is
downloaded as a binary and nothing runs in containers: the control plane is built from
source through the Go module proxy, then started as plain processes.

Building (:func:`build`, ``make kube``, ``python -m tests.support.kube build``)
    needs Go (1.26 or newer) and the module proxy. A wrapper module
    (``tests/support/kube/go.mod``, with its ``go.sum``) requires ``k8s.io/kubernetes``
    and replaces each of its staging modules (``k8s.io/api``, ``k8s.io/client-go``, ...)
    with the published ``v0.x`` version, since Kubernetes' own ``go.mod`` points them at
    local paths and so cannot be ``go install``-ed. From it ``kube-apiserver``,
    ``kube-controller-manager``, ``kube-scheduler`` and etcd are built (``-trimpath``,
    with the version stamped in), and ``kwok`` (the node simulator) is installed from
    its own module (``CGO_ENABLED=0``: no C compiler needed). The cold build takes 9
    to 14 minutes on 2 cores shared with other work (measured: 10 min 17 s and 13 min
    56 s; up to 30 minutes on a very busy machine), peaks near 2.7 GB of memory
    while linking, and leaves about 4 GB in Go's build cache (``go env GOCACHE``, by
    default also under ``$XDG_CACHE_HOME``); with a warm Go cache it
    relinks in about 20 seconds, to identical binaries. The five binaries (about 380 MB)
    are cached by version in
    ``${XDG_CACHE_HOME:-~/.cache}/mlledger/kubernetes/<version>/bin/``, written
    atomically (built in a temporary directory, then renamed), so an interrupted build
    leaves no half cache; a complete cache whose binaries all answer ``--version`` is
    used as it is (checking that takes 0.3 s). ``MLLEDGER_KUBE_BIN`` names a directory
    of binaries to use instead.

Starting (:class:`KubePlane`, ``python -m tests.support.kube up``)
    takes about 4 seconds and 0.6 GB of memory: etcd, kube-apiserver,
    kube-controller-manager, kube-scheduler and kwok, on free ports of 127.0.0.1, in a
    fresh temporary directory holding the certificates (made with ``cryptography``: a
    CA, the API server's serving certificate, the service-account signing key, client
    certificates) and two kubeconfig files:

    * :attr:`KubePlane.admin_kubeconfig`: ``system:masters``, for the tests' own set-up;
    * :attr:`KubePlane.executor_kubeconfig`: the user ``mlledger-executor``, allowed only
      what ``executors/kubernetes/role.yaml`` grants: its Role, bound by a RoleBinding in
      :attr:`KubePlane.namespace` (``mlledger`` by default), and its ClusterRole
      ``mlledger-node-reader``, bound by a ClusterRoleBinding.

    :meth:`KubePlane.stop` (also run at exit) terminates the processes one at a time,
    kills those that linger, and removes the directory; the processes also die with the
    process that started them, however it ends. One plain node (no GPU, no taint) is there from
    the start; :meth:`KubePlane.add_gpu_nodes` adds nodes with ``nvidia.com/gpu``
    capacity, the product label ``nvidia.com/gpu.product`` and the taint
    ``nvidia.com/gpu=present:NoSchedule``, as the NVIDIA device plugin and GPU feature
    discovery would. A Job's pod runs within milliseconds of its creation; a Job
    completes in about a second. The node lifecycle controller does not run (kwok
    keeps the nodes' status and leases; nothing is evicted).

What the simulated nodes do with pods (``tests/support/kube/kwok.yaml``)
    A pod runs at once and, unless it restarts ``Always`` (a Deployment's pods stay
    Running and Ready), succeeds with exit code 0 after 500 ms. Its annotations change
    that (:data:`EXIT`, :data:`REASON`, :data:`MESSAGE`, :data:`HOLD`, :data:`RUNTIME`,
    :func:`pod_annotations`): ``mlledger.test/exit: "137"`` with
    ``mlledger.test/reason: OOMKilled`` ends it Failed, its containers terminated with
    that code and reason; ``mlledger.test/hold: "true"`` keeps it Running until
    :meth:`KubePlane.fail_pod` or :meth:`KubePlane.release_pod` (or a Job's deadline, or a
    deletion) ends it; ``mlledger.test/runtime: "3s"`` sets how long it runs. A
    container's log (``kubectl logs``, through the API server and kwok's kubelet API) is
    :data:`POD_LOG_LINES`, unless :meth:`KubePlane.set_pod_logs` gave that pod its own
    (kwok's log rules cannot use the pod's name in the text, so a pod's own log is a
    kwok ``Logs`` object, its CRD in ``tests/support/kube/logs-crd.yaml``).

In the tests
    :func:`ensure_plane` gives one started plane shared by the session, or ``None`` when
    it cannot be had (no binaries, and no Go to build them, or building not allowed
    here: outside CI a missing build is not started by the tests, ``make kube`` does
    it). The session fixture :func:`kube_plane` (``from tests.support.kube import
    kube_plane``) skips without one, and fails under ``CI=true`` (:data:`MISSING_MESSAGE`),
    like the PostgreSQL server's fixture.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import datetime as dt
import fcntl
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.throwaway import (
    ThrowawayServer,
    dying_with_parent,
    free_port,
    run_step,
    wait_until_interrupted,
)

__all__ = [
    "DEFAULT_VERSION",
    "EXIT",
    "GPU_PRODUCT_LABEL",
    "GPU_RESOURCE",
    "GPU_TAINT",
    "HOLD",
    "MESSAGE",
    "MISSING_MESSAGE",
    "POD_LOG_LINES",
    "REASON",
    "RUNTIME",
    "KubePlane",
    "KubePlaneError",
    "build",
    "cache_bin_dir",
    "ensure_plane",
    "kube_plane",
    "pod_annotations",
]

#: The Kubernetes release the plane runs; the etcd and kwok releases that go with it.
DEFAULT_VERSION = "v1.37.2"
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
ETCD_VERSION = "v3.7.0"
KWOK_PACKAGE = "sigs.k8s.io/kwok/cmd/kwok"
KWOK_VERSION = "v0.8.0"
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok")

#: Environment variable naming a directory with the five binaries, to use instead.
ENV_BIN = "MLLEDGER_KUBE_BIN"
#: Environment variable naming the executor's role file (default: the repository's).
ENV_ROLE_FILE = "MLLEDGER_KUBE_ROLE_FILE"

#: Pod annotations that the simulated nodes act on (see tests/support/kube/kwok.yaml).
EXIT = "mlledger.test/exit"
REASON = "mlledger.test/reason"
MESSAGE = "mlledger.test/message"
HOLD = "mlledger.test/hold"
RUNTIME = "mlledger.test/runtime"

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_COUNT_LABEL = "nvidia.com/gpu.count"
GPU_TAINT = {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}

EXECUTOR_USER = "mlledger-executor"

#: What every container of every pod prints (its log, as the API server serves it).
POD_LOG_LINES = (
    "mlledger test workload: starting",
    "epoch 1/2 loss=0.693",
    "epoch 2/2 loss=0.412",
    "mlledger test workload: done",
)

_MISSING_TEMPLATE = (
    "The Kubernetes test control plane is not available: its binaries are not built "
    f"(cache: {{cache}}). Run `make kube` (or `python -m tests.support.kube build`) once: "
    "it builds kube-apiserver, kube-controller-manager, kube-scheduler, etcd and kwok "
    "from the Go module proxy (needs Go 1.26+, about 10 minutes on 2 cores, 4 GB of Go "
    f"build cache). Or set {ENV_BIN} to a directory holding those five binaries."
)

_REPO_ROOT = Path(__file__).resolve().parents[2]
_ASSETS = Path(__file__).resolve().parent / "kube"
_DEFAULT_ROLE_FILE = _REPO_ROOT / "executors" / "kubernetes" / "role.yaml"
_START_TIMEOUT_S = 60.0
_START_ATTEMPTS = 3
_STOP_TIMEOUT_S = 10.0


class KubePlaneError(RuntimeError):
    """The control plane could not be built, started or used."""


# -- building ------------------------------------------------------------------------


def cache_bin_dir(version: str = DEFAULT_VERSION) -> Path:
    """Where the binaries of ``version`` are cached (whether or not they are there)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mlledger" / "kubernetes" / version / "bin"


def _binaries_work(bindir: Path) -> bool:
    """True when all five binaries are in ``bindir`` and each answers ``--version``."""
    for name in BINARIES:
        path = bindir / name
        if not os.access(path, os.X_OK):
            return False
        try:
            result = subprocess.run(
                [str(path), "--version"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        if result.returncode != 0:
            return False
    return True


def _go_mod(version: str) -> tuple[str, str | None]:
    """The wrapper module's go.mod (and go.sum, when it matches) for ``version``."""
    go_mod = (_ASSETS / "go.mod").read_text()
    pinned = re.search(r"k8s\.io/kubernetes (v\S+)", go_mod)
    assert pinned is not None
    if pinned.group(1) == version:
        return go_mod, (_ASSETS / "go.sum").read_text()
    # Another release: same layout, the staging modules at v0.<minor>.<patch>.
    match = re.fullmatch(r"v1\.(\d+\.\d+)", version)
    if match is None:
        raise KubePlaneError(f"not a Kubernetes release version: {version!r}")
    old_staging = "v0." + pinned.group(1)[3:]
    go_mod = go_mod.replace(pinned.group(1), version).replace(old_staging, "v0." + match[1])
    return go_mod, None  # go.sum is recomputed (-mod=mod)


def _version_ldflags(version: str) -> str:
    match = re.fullmatch(r"v(\d+)\.(\d+)\..*", version)
    if match is None:
        raise KubePlaneError(f"not a Kubernetes release version: {version!r}")
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={match[1]}",
            f"-X {pkg}.gitMinor={match[2]}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(["-s", "-w", *flags])


#: What to tell the user when there is no plane (a skip locally, an error in CI).
MISSING_MESSAGE = _MISSING_TEMPLATE.format(cache=cache_bin_dir())


def build(version: str = DEFAULT_VERSION, *, quiet: bool = False) -> Path:
    """Return the directory holding the five binaries, building them when missing.

    The cache (:func:`cache_bin_dir`) is used when complete; otherwise everything is
    built into a temporary directory beside it, checked, and renamed into place. A lock
    file keeps two builds of one version from running at once. Progress goes to stderr
    unless ``quiet``; the whole log to ``build.log`` beside the cache.

    :raises KubePlaneError: Go is missing, or a build step failed (the log's tail is in
        the message).
    """
    bindir = cache_bin_dir(version)
    if _binaries_work(bindir):
        return bindir
    go = shutil.which("go")
    if go is None:
        raise KubePlaneError("cannot build the Kubernetes control plane: `go` is not on PATH")
    root = bindir.parent
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _binaries_work(bindir):  # built meanwhile by another process
            return bindir
        for stale in root.glob(".build-*"):  # what a killed build left behind
            shutil.rmtree(stale, ignore_errors=True)
        _build_into(go, version, root, bindir, quiet=quiet)
    return bindir


def _build_into(go: str, version: str, root: Path, bindir: Path, *, quiet: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    log_path = root / "build.log"
    try:
        src = work / "src"
        out = work / "bin"
        src.mkdir()
        out.mkdir()
        go_mod, go_sum = _go_mod(version)
        (src / "go.mod").write_text(go_mod)
        if go_sum is not None:
            (src / "go.sum").write_text(go_sum)
        env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod -buildvcs=false")
        env.pop("GOBIN", None)
        ldflags = _version_ldflags(version)
        control_plane = [
            f"k8s.io/kubernetes/cmd/{name}"
            for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
        ]
        build_flags = ["-trimpath", "-ldflags"]
        steps: list[tuple[str, list[str], dict[str, str]]] = [
            (
                "kube-apiserver, kube-controller-manager, kube-scheduler",
                [go, "build", *build_flags, ldflags, "-o", f"{out}/", *control_plane],
                env,
            ),
            (
                "etcd",
                [go, "build", *build_flags, "-s -w", "-o", str(out / "etcd"), ETCD_MODULE],
                env,
            ),
            (
                "kwok",
                [go, "install", *build_flags, "-s -w", f"{KWOK_PACKAGE}@{KWOK_VERSION}"],
                dict(env, GOFLAGS="-buildvcs=false", GOBIN=str(out)),
            ),
        ]
        started = time.monotonic()
        with log_path.open("w") as log:
            for label, argv, step_env in steps:
                t0 = time.monotonic()
                if not quiet:
                    print(f"kube: building {label} ...", file=sys.stderr, flush=True)
                result = run_step(argv, cwd=src, env=step_env, log=log)
                log.write(f"# {label}: exit {result.returncode}, {time.monotonic() - t0:.0f}s\n")
                log.flush()
                if result.returncode != 0:
                    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
                    raise KubePlaneError(f"building {label} failed (log: {log_path}):\n{tail}")
        if not _binaries_work(out):
            raise KubePlaneError(f"the built binaries do not run (log: {log_path})")
        if bindir.exists():
            shutil.rmtree(bindir)
        out.rename(bindir)
        if not quiet:
            print(
                f"kube: built in {time.monotonic() - started:.0f}s into {bindir}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- certificates ----------------------------------------------------------------------


@dataclass(frozen=True)
class _KeyPair:
    cert: Path
    key: Path


class _Pki:
    """A CA and the certificates signed by it, as PEM files in one directory."""

    def __init__(self, directory: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._x509 = x509
        self._hashes = hashes
        self._ser = serialization
        self._ec = ec
        self._oid = NameOID
        self.dir = directory
        self._now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlledger-test-ca")])
        self._ca_name = name
        self._ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now)
            .not_valid_after(self._now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca = _KeyPair(self.dir / "ca.crt", self.dir / "ca.key")
        self.ca.cert.write_bytes(self.ca_pem)
        self._write_key(self.ca.key, self._ca_key)

    @property
    def ca_pem(self) -> bytes:
        return self._ca_cert.public_bytes(self._ser.Encoding.PEM)

    def _write_key(self, path: Path, key: Any) -> None:
        pem = key.private_bytes(
            self._ser.Encoding.PEM,
            self._ser.PrivateFormat.PKCS8,
            self._ser.NoEncryption(),
        )
        path.write_bytes(pem)
        path.chmod(0o600)

    def issue(
        self,
        stem: str,
        common_name: str,
        *,
        organizations: tuple[str, ...] = (),
        server: bool = False,
    ) -> _KeyPair:
        """A leaf certificate: a server's (for 127.0.0.1 and localhost) or a client's."""
        x509, oid = self._x509, self._oid
        key = self._ec.generate_private_key(self._ec.SECP256R1())
        attrs = [x509.NameAttribute(oid.ORGANIZATION_NAME, o) for o in organizations]
        attrs.append(x509.NameAttribute(oid.COMMON_NAME, common_name))
        usage = x509.oid.ExtendedKeyUsageOID
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self._ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now)
            .not_valid_after(self._now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([usage.SERVER_AUTH if server else usage.CLIENT_AUTH]),
                critical=False,
            )
        )
        if server:
            import ipaddress

            names: list[x509.GeneralName] = [
                x509.DNSName("localhost"),
                x509.DNSName("kubernetes"),
                x509.DNSName("kubernetes.default"),
                x509.DNSName("kubernetes.default.svc"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
            ]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._ca_key, self._hashes.SHA256())
        pair = _KeyPair(self.dir / f"{stem}.crt", self.dir / f"{stem}.key")
        pair.cert.write_bytes(cert.public_bytes(self._ser.Encoding.PEM))
        self._write_key(pair.key, key)
        return pair

    def service_account_keys(self) -> _KeyPair:
        """The key pair that signs service-account tokens (``sa.key``, ``sa.pub``)."""
        key = self._ec.generate_private_key(self._ec.SECP256R1())
        pair = _KeyPair(self.dir / "sa.pub", self.dir / "sa.key")
        pub = key.public_key().public_bytes(
            self._ser.Encoding.PEM, self._ser.PublicFormat.SubjectPublicKeyInfo
        )
        pair.cert.write_bytes(pub)
        self._write_key(pair.key, key)
        return pair


def _kubeconfig(path: Path, server: str, ca: Path, client: _KeyPair, user: str) -> Path:
    """Write a self-contained kubeconfig (certificates embedded) and return its path."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "mlledger-test",
                "cluster": {"server": server, "certificate-authority-data": b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(client.cert),
                    "client-key-data": b64(client.key),
                },
            }
        ],
        "contexts": [{"name": user, "context": {"cluster": "mlledger-test", "user": user}}],
        "current-context": user,
        "preferences": {},
    }
    # JSON is YAML: every kubeconfig reader accepts it.
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path


# -- the plane -------------------------------------------------------------------------


def pod_annotations(
    *,
    exit_code: int | None = None,
    reason: str | None = None,
    message: str | None = None,
    hold: bool = False,
    runtime: str | None = None,
) -> dict[str, str]:
    """The pod annotations that make a simulated node end a pod as asked.

    :param exit_code: end the pod Failed, its containers terminated with this code
        (``0``: Succeeded, as without it).
    :param reason: the containers' termination reason (``OOMKilled``, ...; default
        ``Error``); only with ``exit_code``.
    :param message: the containers' termination message; only with ``exit_code``.
    :param hold: keep the pod Running until :meth:`KubePlane.fail_pod` or
        :meth:`KubePlane.release_pod`.
    :param runtime: how long the pod runs before it ends, as a Go duration (``"3s"``).
    """
    annotations: dict[str, str] = {}
    if exit_code is not None:
        annotations[EXIT] = str(int(exit_code))
        if reason is not None:
            annotations[REASON] = reason
        if message is not None:
            annotations[MESSAGE] = message
    elif reason is not None or message is not None:
        raise ValueError("reason and message need an exit_code")
    if hold:
        annotations[HOLD] = "true"
    if runtime is not None:
        annotations[RUNTIME] = runtime
    return annotations


class KubePlane(ThrowawayServer):
    """etcd, the Kubernetes control plane and kwok, started as local processes.

    ``KubePlane().start()`` (or ``with KubePlane() as plane:``) builds the binaries if
    needed (:func:`build`), starts everything, creates :attr:`namespace` with the
    executor's RBAC, and one plain node. See the module's documentation.
    """

    def __init__(
        self,
        bindir: Path | None = None,
        *,
        version: str = DEFAULT_VERSION,
        namespace: str = "mlledger",
        role_file: Path | None = None,
        cpu_nodes: int = 1,
    ) -> None:
        """Prepare (but do not start) a plane.

        :param bindir: directory with the five binaries; :func:`build` when omitted.
        :param version: the Kubernetes release to build when ``bindir`` is omitted.
        :param namespace: the namespace the executor identity may work in.
        :param role_file: the executor's RBAC (a Role and the ClusterRole
            ``mlledger-node-reader``); ``$MLLEDGER_KUBE_ROLE_FILE`` or the repository's
            ``executors/kubernetes/role.yaml`` when omitted.
        :param cpu_nodes: how many plain nodes (no GPU, no taint) to start with.
        """
        self._bindir = bindir
        self._version = version
        self.namespace = namespace
        env_role = os.environ.get(ENV_ROLE_FILE, "").strip()
        self.role_file = role_file or (Path(env_role) if env_role else _DEFAULT_ROLE_FILE)
        self._cpu_nodes = cpu_nodes
        self._tmpdir: Path | None = None
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._ssl: ssl.SSLContext | None = None
        self._port: int | None = None
        self._node_seq = 0
        self._lock = threading.Lock()
        self.admin_kubeconfig: Path | None = None
        self.executor_kubeconfig: Path | None = None
        self.startup_seconds: float | None = None

    def __repr__(self) -> str:
        state = f"running at {self.server}" if self.running else "stopped"
        return f"<KubePlane {state}>"

    # -- properties --------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._port is not None and bool(self._procs)

    @property
    def server(self) -> str:
        """The API server's URL (``https://127.0.0.1:PORT``)."""
        if self._port is None:
            raise KubePlaneError("plane not started")
        return f"https://127.0.0.1:{self._port}"

    @property
    def directory(self) -> Path | None:
        """The plane's temporary directory: certificates, kubeconfigs, logs, etcd data."""
        return self._tmpdir

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> KubePlane:
        """Start everything (idempotent) and return ``self``.

        :raises KubePlaneError: a binary is missing, a process exited or a component was
            not ready in time (the tail of its log is in the message).
        """
        if self.running:
            return self
        started = time.monotonic()
        if not self.role_file.is_file():
            raise KubePlaneError(f"the executor's role file is missing: {self.role_file}")
        bindir = self._bindir or build(self._version)
        self._bindir = bindir
        for attempt in range(_START_ATTEMPTS):
            atexit.register(self.stop)
            try:
                self._start(bindir)
                break
            except KubePlaneError as exc:
                self.stop()
                # A free port taken by someone else between the choice and the bind.
                if "address already in use" not in str(exc) or attempt == _START_ATTEMPTS - 1:
                    raise
            except BaseException:
                self.stop()
                raise
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop every process (terminate, then kill) and remove the directory."""
        atexit.unregister(self.stop)
        procs, self._procs = self._procs, []
        # One at a time, the clients first: the API server shuts down slowly without etcd.
        for _, proc in reversed(procs):
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.terminate()
            try:
                proc.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        self._port = None
        self._ssl = None
        tmpdir, self._tmpdir = self._tmpdir, None
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def _start(self, bindir: Path) -> None:
        tmp = self._tmpdir = Path(tempfile.mkdtemp(prefix="mlkube-"))
        pki_dir = tmp / "pki"
        pki_dir.mkdir(mode=0o700)
        pki = _Pki(pki_dir)
        serving = pki.issue("apiserver", "kube-apiserver", server=True)
        kubelet_serving = pki.issue("kwok-kubelet", "kwok", server=True)
        kubelet_client = pki.issue(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client", organizations=("kwok",)
        )
        admin = pki.issue("admin", "mlledger-test-admin", organizations=("system:masters",))
        executor = pki.issue("executor", EXECUTOR_USER)
        sa = pki.service_account_keys()

        etcd_port, etcd_peer, api_port, kwok_port = (free_port() for _ in range(4))
        server = f"https://127.0.0.1:{api_port}"
        self.admin_kubeconfig = _kubeconfig(
            tmp / "admin.kubeconfig", server, pki.ca.cert, admin, "admin"
        )
        self.executor_kubeconfig = _kubeconfig(
            tmp / "executor.kubeconfig", server, pki.ca.cert, executor, EXECUTOR_USER
        )
        context = ssl.create_default_context(cafile=str(pki.ca.cert))
        context.load_cert_chain(str(admin.cert), str(admin.key))
        self._ssl = context

        etcd_url = self._start_etcd(bindir, tmp, etcd_port, etcd_peer)
        self._start_apiserver(bindir, pki, etcd_url, api_port, (serving, kubelet_client, sa))
        self._start_controllers(bindir, pki, sa)
        self._start_kwok(bindir, tmp, kwok_port, kubelet_serving)
        self._bootstrap_rbac()
        self._wait(
            "the namespace's default service account (kube-controller-manager)",
            lambda: (
                self.request(
                    "GET",
                    f"/api/v1/namespaces/{self.namespace}/serviceaccounts/default",
                    ok=(200, 404),
                ).get("kind")
                == "ServiceAccount"
            ),
        )
        if self._cpu_nodes:
            self.add_nodes(self._cpu_nodes)

    def _start_etcd(self, bindir: Path, tmp: Path, port: int, peer: int) -> str:
        """etcd on ``port``; return its client URL."""
        etcd_url = f"http://127.0.0.1:{port}"
        self._spawn(
            "etcd",
            bindir / "etcd",
            "--name=mlledger-test",
            f"--data-dir={tmp / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=mlledger-test=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        )
        self._wait("etcd", lambda: _http_ok(f"{etcd_url}/health"))
        return etcd_url

    def _start_apiserver(
        self,
        bindir: Path,
        pki: _Pki,
        etcd_url: str,
        api_port: int,
        keys: tuple[_KeyPair, _KeyPair, _KeyPair],
    ) -> None:
        """kube-apiserver on ``api_port``: ``keys`` are its serving certificate, its
        client certificate towards kwok's kubelet API and the service-account keys."""
        serving, kubelet_client, sa = keys
        pki_dir = pki.dir
        self._spawn(
            "kube-apiserver",
            bindir / "kube-apiserver",
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            # With a loopback advertise address the endpoint reconciler refuses to start.
            "--endpoint-reconciler-type=none",
            f"--cert-dir={pki_dir}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={pki.ca.cert}",
            f"--kubelet-certificate-authority={pki.ca.cert}",
            f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}",
            "--kubelet-preferred-address-types=InternalIP",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa.cert}",
            f"--service-account-signing-key-file={sa.key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--event-ttl=1h",
        )
        self._port = api_port
        self._wait("kube-apiserver", lambda: self._api_ok("/readyz"))

    def _start_controllers(self, bindir: Path, pki: _Pki, sa: _KeyPair) -> None:
        """kube-controller-manager and kube-scheduler, as the administrator."""
        kubeconfig = str(self.admin_kubeconfig)
        self._spawn(
            "kube-controller-manager",
            bindir / "kube-controller-manager",
            f"--kubeconfig={kubeconfig}",
            "--secure-port=0",
            "--leader-elect=false",
            # The simulated nodes' health is kwok's business: no taints, no evictions.
            "--controllers=*,-node-lifecycle-controller",
            f"--root-ca-file={pki.ca.cert}",
            f"--service-account-private-key-file={sa.key}",
            f"--cluster-signing-cert-file={pki.ca.cert}",
            f"--cluster-signing-key-file={pki.ca.key}",
            "--profiling=false",
            # A burst of hundreds of Jobs: the defaults (20 requests a second, 5 Jobs
            # synced at once) would pace pod creation, not the scheduler or the GPUs.
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
            "--concurrent-job-syncs=50",
        )
        self._spawn(
            "kube-scheduler",
            bindir / "kube-scheduler",
            f"--kubeconfig={kubeconfig}",
            "--secure-port=0",
            "--leader-elect=false",
            "--profiling=false",
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
        )

    def _start_kwok(
        self, bindir: Path, tmp: Path, kwok_port: int, kubelet_serving: _KeyPair
    ) -> None:
        """kwok, serving pods' logs on ``kwok_port``, with its Logs resource."""
        kubeconfig = str(self.admin_kubeconfig)
        logs_file = tmp / "pod.log"
        _write_cri_log(logs_file, POD_LOG_LINES)
        (tmp / "logs").mkdir()
        self.request(
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            (_ASSETS / "logs-crd.yaml").read_text(),
            content_type="application/yaml",
        )
        self._wait("kwok's Logs resource", self._logs_crd_established)
        kwok_config = tmp / "kwok.yaml"
        kwok_config.write_text(
            (_ASSETS / "kwok.yaml").read_text().replace("@LOGS_FILE@", str(logs_file))
        )
        self._spawn(
            "kwok",
            bindir / "kwok",
            f"--kubeconfig={kubeconfig}",
            f"--config={kwok_config}",
            "--manage-all-nodes=true",
            "--node-ip=127.0.0.1",
            f"--node-port={kwok_port}",
            f"--server-address=127.0.0.1:{kwok_port}",
            f"--tls-cert-file={kubelet_serving.cert}",
            f"--tls-private-key-file={kubelet_serving.key}",
            "--node-lease-duration-seconds=40",
            # A pod's own log (set_pod_logs) is a Logs object; all others: kwok.yaml's.
            "--enable-crds=Logs",
            "--cidr=10.244.0.1/16",
        )

    def _spawn(self, name: str, binary: Path, *args: str) -> None:
        assert self._tmpdir is not None
        log = (self._tmpdir / f"{name}.log").open("wb")
        try:
            proc = subprocess.Popen(
                [str(binary), *args],
                cwd=self._tmpdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=dying_with_parent(signal.SIGKILL),
            )
        except OSError as exc:
            raise KubePlaneError(f"cannot run {binary}: {exc}") from exc
        finally:
            log.close()
        self._procs.append((name, proc))

    def _wait(self, what: str, ready: Any, timeout: float = _START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for name, proc in self._procs:
                if proc.poll() is not None:
                    raise KubePlaneError(
                        f"{name} exited {proc.returncode} while waiting for {what}:\n"
                        + self.log_tail(name)
                    )
            with contextlib.suppress(OSError, KubePlaneError, http.client.HTTPException):
                if ready():
                    return
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {n}\n{self.log_tail(n, 15)}" for n, _ in self._procs)
                raise KubePlaneError(f"{what} not ready after {timeout:.0f}s\n{tails}")
            time.sleep(0.05)

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The last ``lines`` lines of a component's log (``kube-apiserver``, ``kwok``, ...)."""
        if self._tmpdir is None:
            return ""
        try:
            text = (self._tmpdir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def rss_bytes(self) -> int:
        """The resident memory of the plane's processes together."""
        total = 0
        for _, proc in self._procs:
            with contextlib.suppress(OSError, ValueError, IndexError):
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        return total

    # -- the API, as the admin ---------------------------------------------------------

    def _api_ok(self, path: str) -> bool:
        return self.request("GET", path, ok=(200, 500, 503), raw=True) == "ok"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        ok: tuple[int, ...] = (200, 201, 202),
        raw: bool = False,
    ) -> Any:
        """Call the API server as the admin; return the decoded JSON answer (or text).

        :raises KubePlaneError: the status is not in ``ok``.
        """
        if self._ssl is None or self._port is None:
            raise KubePlaneError("plane not started")
        if body is not None and not isinstance(body, str | bytes):
            body = json.dumps(body)
        conn = http.client.HTTPSConnection("127.0.0.1", self._port, context=self._ssl, timeout=30)
        try:
            headers = {"Accept": "application/json"}
            if body is not None:
                headers["Content-Type"] = content_type
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read().decode(errors="replace")
        finally:
            conn.close()
        if response.status not in ok:
            raise KubePlaneError(f"{method} {path}: HTTP {response.status}: {data[:2000]}")
        if raw:
            return data
        try:
            return json.loads(data) if data else {}
        except ValueError:
            return {"text": data}

    def _bootstrap_rbac(self) -> None:
        """The namespace, and the executor's Role and ClusterRole bound to its user."""
        ns = self.namespace
        self.request(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        )
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        subject = {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": EXECUTOR_USER}
        role_names: list[tuple[str, str]] = []
        for doc in re.split(r"(?m)^---\s*$", self.role_file.read_text()):
            kind = re.search(r"(?m)^kind:\s*(\w+)", doc)
            if kind is None:
                continue
            if kind[1] == "Role":
                path = f"{rbac}/namespaces/{ns}/roles"
            elif kind[1] == "ClusterRole":
                path = f"{rbac}/clusterroles"
            else:
                raise KubePlaneError(f"{self.role_file}: unexpected kind {kind[1]!r}")
            # The API server reads YAML itself.
            created = self.request("POST", path, doc, content_type="application/yaml")
            role_names.append((kind[1], created["metadata"]["name"]))
        if not any(kind == "Role" for kind, _ in role_names):
            raise KubePlaneError(f"{self.role_file}: no Role")
        for kind, name in role_names:
            binding = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "metadata": {"name": f"{EXECUTOR_USER}-{name}"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
                "subjects": [subject],
            }
            if kind == "Role":
                binding["kind"] = "RoleBinding"
                self.request("POST", f"{rbac}/namespaces/{ns}/rolebindings", binding)
            else:
                binding["kind"] = "ClusterRoleBinding"
                self.request("POST", f"{rbac}/clusterrolebindings", binding)

    # -- nodes ---------------------------------------------------------------------------

    def add_nodes(
        self,
        count: int,
        *,
        gpus_per_node: int = 0,
        product: str | None = None,
        labels: dict[str, str] | None = None,
        prefix: str | None = None,
    ) -> list[str]:
        """Add ``count`` simulated nodes and return their names, once they are Ready.

        With ``gpus_per_node``, each node has that ``nvidia.com/gpu`` capacity, the
        labels ``nvidia.com/gpu.product`` (``product``) and ``nvidia.com/gpu.count``, and
        the taint ``nvidia.com/gpu=present:NoSchedule``.
        """
        created: list[tuple[str, list[dict[str, str]]]] = []
        for _ in range(count):
            with self._lock:
                self._node_seq += 1
                seq = self._node_seq
            name = f"{prefix or ('gpu' if gpus_per_node else 'cpu')}-node-{seq}"
            node_labels = {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                **(labels or {}),
            }
            capacity = {"cpu": "64", "memory": "512Gi", "pods": "110"}
            taints = []
            if gpus_per_node:
                node_labels[GPU_PRODUCT_LABEL] = product or "NVIDIA-H100-80GB-HBM3"
                node_labels[GPU_COUNT_LABEL] = str(gpus_per_node)
                node_labels["nvidia.com/gpu.present"] = "true"
                capacity[GPU_RESOURCE] = str(gpus_per_node)
                taints.append(dict(GPU_TAINT))
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": node_labels,
                    "annotations": {
                        "kwok.x-k8s.io/node": "fake",
                        "node.alpha.kubernetes.io/ttl": "0",
                    },
                },
                "spec": {"taints": taints},
                "status": {"capacity": capacity, "allocatable": dict(capacity)},
            }
            self.request("POST", "/api/v1/nodes", node)
            created.append((name, taints))
        for name, taints in created:
            self._wait(f"node {name} Ready (kwok)", lambda n=name: self._node_ready(n))
            # The API server adds node.kubernetes.io/not-ready to every new node, and the
            # node lifecycle controller (not run here: kwok owns the nodes' health) would
            # lift it once the node is Ready.
            self.request(
                "PATCH",
                f"/api/v1/nodes/{quote(name)}",
                {"spec": {"taints": taints or None}},
                content_type="application/merge-patch+json",
            )
        return [name for name, _ in created]

    def add_gpu_nodes(
        self,
        count: int,
        gpus_per_node: int = 8,
        product: str = "NVIDIA-H100-80GB-HBM3",
        **options: Any,
    ) -> list[str]:
        """Add ``count`` GPU nodes (see :meth:`add_nodes`) and return their names."""
        if gpus_per_node < 1:
            raise ValueError("a GPU node has at least one GPU")
        return self.add_nodes(count, gpus_per_node=gpus_per_node, product=product, **options)

    def delete_nodes(self, names: list[str]) -> None:
        """Delete nodes (their pods are left to the garbage collector)."""
        for name in names:
            self.request("DELETE", f"/api/v1/nodes/{quote(name)}", ok=(200, 202, 404))

    def _logs_crd_established(self) -> bool:
        crd = self.request(
            "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/logs.kwok.x-k8s.io"
        )
        conditions = crd.get("status", {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    def _node_ready(self, name: str) -> bool:
        node = self.request("GET", f"/api/v1/nodes/{quote(name)}")
        conditions = node.get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    # -- pods ----------------------------------------------------------------------------

    def _patch_pod(self, name: str, namespace: str | None, annotations: dict[str, Any]) -> None:
        ns = namespace or self.namespace
        self.request(
            "PATCH",
            f"/api/v1/namespaces/{quote(ns)}/pods/{quote(name)}",
            {"metadata": {"annotations": annotations}},
            content_type="application/merge-patch+json",
        )

    def fail_pod(
        self,
        name: str,
        exit_code: int = 1,
        reason: str = "Error",
        message: str = "",
        *,
        namespace: str | None = None,
    ) -> None:
        """End a running (or held) pod Failed, its containers terminated with
        ``exit_code`` and ``reason`` (within about half a second)."""
        self._patch_pod(
            name,
            namespace,
            {
                EXIT: str(int(exit_code)),
                REASON: reason,
                MESSAGE: message,
                HOLD: None,
                RUNTIME: "1ms",
            },
        )

    def set_pod_logs(
        self,
        pod: str,
        lines: Iterable[str],
        *,
        namespace: str | None = None,
        container: str | None = None,
    ) -> None:
        """Make the log of ``pod`` (of its ``container``, or of all its containers) the
        given lines, instead of :data:`POD_LOG_LINES`; served as soon as this returns."""
        if self._tmpdir is None:
            raise KubePlaneError("plane not started")
        ns = namespace or self.namespace
        lines = list(lines)
        path = self._tmpdir / "logs" / f"{ns}_{pod}_{container or ''}.log"
        _write_cri_log(path, lines)
        entry: dict[str, Any] = {"logsFile": str(path), "follow": False}
        if container:
            entry["containers"] = [container]
        base = f"/apis/kwok.x-k8s.io/v1alpha1/namespaces/{quote(ns)}/logs"
        found = self.request("GET", f"{base}/{quote(pod)}", ok=(200, 404))
        if found.get("kind") == "Logs":
            kept = [
                e
                for e in found["spec"].get("logs") or []
                if container and e.get("containers") and e["containers"] != [container]
            ]
            found["spec"]["logs"] = [entry, *kept]
            self.request("PUT", f"{base}/{quote(pod)}", found)
        else:
            logs = {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "Logs",
                "metadata": {"name": pod, "namespace": ns},
                "spec": {"logs": [entry]},
            }
            self.request("POST", base, logs)
        # kwok learns of the object through a watch: wait until it serves the new log.
        pod_path = f"/api/v1/namespaces/{quote(ns)}/pods/{quote(pod)}"
        spec = self.request("GET", pod_path).get("spec", {})
        if not spec.get("nodeName"):
            return  # the log can only be read once the pod is on a node
        name = container or spec["containers"][0]["name"]
        expected = "".join(f"{line}\n" for line in lines)
        self._wait(
            f"kwok to serve the new log of {pod}",
            lambda: (
                self.request(
                    "GET", f"{pod_path}/log?container={quote(name)}", ok=(200, 400), raw=True
                )
                == expected
            ),
            timeout=15,
        )

    def release_pod(self, name: str, *, namespace: str | None = None) -> None:
        """Let a held pod end as it would have (Succeeded, unless it has an exit code)."""
        self._patch_pod(name, namespace, {HOLD: None, RUNTIME: "1ms"})


def _write_cri_log(path: Path, lines: Iterable[str]) -> None:
    """Write lines in the CRI log format kwok reads (``TIME stdout F LINE``)."""
    stamp = "2026-01-01T00:00:00.000000000Z"
    path.write_text("".join(f"{stamp} stdout F {line}\n" for line in lines))


def _http_ok(url: str) -> bool:
    from urllib.request import urlopen

    with urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


# -- the tests' shared plane -----------------------------------------------------------

_shared: KubePlane | None = None


def _find_bindir() -> Path | None:
    """A directory with working binaries, building them in CI; ``None`` otherwise."""
    env = os.environ.get(ENV_BIN, "").strip()
    if env:
        if not _binaries_work(Path(env)):
            raise KubePlaneError(f"{ENV_BIN}={env} does not hold five working binaries")
        return Path(env)
    bindir = cache_bin_dir()
    if _binaries_work(bindir):
        return bindir
    if os.environ.get("CI", "").strip().lower() == "true" and shutil.which("go"):
        return build()
    return None


def ensure_plane() -> KubePlane | None:
    """Return the session's started plane, or ``None`` if its binaries are missing.

    Missing binaries are built only in CI (``CI=true``, with Go on PATH); elsewhere
    ``make kube`` builds them once. A plane that has binaries but does not start is an
    error, not a ``None``.

    :raises KubePlaneError: the plane could not be built or started.
    """
    global _shared
    if _shared is not None and _shared.running:
        return _shared
    bindir = _find_bindir()
    if bindir is None:
        return None
    _shared = KubePlane(bindir).start()
    return _shared


@pytest.fixture(scope="session")
def kube_plane() -> Iterator[KubePlane]:
    """One control plane for the whole session (skip, or fail in CI, without one)."""
    plane = ensure_plane()
    if plane is None:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(MISSING_MESSAGE, pytrace=False)
        pytest.skip(MISSING_MESSAGE)
    yield plane
    plane.stop()


# -- command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.kube",
        description="Build, or start, the Kubernetes control plane of the test-suite.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="build the binaries (cached) and print their folder")
    p_build.add_argument("--version", default=DEFAULT_VERSION)
    p_up = sub.add_parser("up", help="start a plane, print its kubeconfigs, wait for Ctrl-C")
    p_up.add_argument("--gpu-nodes", type=int, default=2)
    p_up.add_argument("--gpus-per-node", type=int, default=8)
    p_up.add_argument("--product", default="NVIDIA-H100-80GB-HBM3")
    p_up.add_argument("--namespace", default="mlledger")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            print(build(args.version))
            return 0
        env_bin = os.environ.get(ENV_BIN, "").strip()
        with KubePlane(Path(env_bin) if env_bin else None, namespace=args.namespace) as plane:
            if args.gpu_nodes:
                plane.add_gpu_nodes(args.gpu_nodes, args.gpus_per_node, args.product)
            print(f"server:              {plane.server}")
            print(f"namespace:           {plane.namespace}")
            print(f"admin kubeconfig:    {plane.admin_kubeconfig}")
            print(f"executor kubeconfig: {plane.executor_kubeconfig}")
            print(f"logs:                {plane.directory}/*.log")
            print(
                f"started in {plane.startup_seconds:.1f}s, "
                f"{plane.rss_bytes() / 2**20:.0f} MiB resident; Ctrl-C stops it",
                flush=True,
            )
            wait_until_interrupted(lambda: plane.running)
    except KubePlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
