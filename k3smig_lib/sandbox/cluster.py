"""One sandbox cluster on disk: ports, PKI, kubeconfigs, kwok stages, and each component's command line.

Flags follow docs/sandbox.md (Runtime) and kwokctl's binary runtime; every listener is pinned to
127.0.0.1 on a port the kernel picked free, so two sandboxes (or another helper's servers) never
clash. The source looks like a plain kubeadm-style cluster (service range 10.96.0.0/16), the target
like K3s (10.43.0.0/16, pods 10.42.0.0/16).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from k3smig_lib.sandbox.pki import ClusterPki, make_cluster_pki
from k3smig_lib.sandbox.procs import free_port

#: Annotation the sandbox's provisioner sets on a pod once its volumes (and Exec) are ready; the
#: pod-ready stage waits for it, as a kubelet waits for volume mounts before starting containers.
VOLUMES_READY = "sandbox.k3smig.io/volumes-ready"
KWOK_STAGES = (
    "node-initialize.yaml",
    "node-heartbeat-with-lease.yaml",
    "pod-ready.yaml",
    "pod-complete.yaml",
    "pod-delete.yaml",
)
KWOK_CRDS = ("kwok.x-k8s.io_execs.yaml",)
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


@dataclass(frozen=True)
class ClusterSpec:
    """What distinguishes the two sandbox clusters."""

    name: str
    service_cidr: str
    service_ip: str
    pod_cidr: str
    nodes: tuple[str, ...]
    k3s_like: bool = False

    @property
    def context(self) -> str:
        """Kubeconfig context name (``k3smig-source`` / ``k3smig-target``)."""
        return f"k3smig-{self.name}"


SOURCE = ClusterSpec("source", "10.96.0.0/16", "10.96.0.1", "10.244.0.0/16", ("source-worker-1", "source-worker-2"))
TARGET = ClusterSpec("target", "10.43.0.0/16", "10.43.0.1", "10.42.0.0/16", ("k3s-vm",), k3s_like=True)


@dataclass(frozen=True)
class ClusterRuntime:
    """A prepared cluster: its folder, ports and PKI."""

    spec: ClusterSpec
    root: Path
    ports: dict[str, int] = field(default_factory=dict)
    pki: ClusterPki | None = None

    @property
    def kubeconfig(self) -> Path:
        """Single-context kubeconfig the components (and the provisioner) use."""
        return self.root / "admin.kubeconfig"

    @property
    def api_url(self) -> str:
        """``https://127.0.0.1:<port>`` of the API server."""
        return f"https://127.0.0.1:{self.ports['kube-apiserver']}"

    @property
    def volumes_dir(self) -> Path:
        """Folder holding one sub-folder per provisioned PersistentVolume."""
        return self.root / "volumes"

    def log(self, component: str) -> Path:
        """Log file of ``component``."""
        return self.root / "logs" / f"{component}.log"

    def to_json(self) -> dict[str, Any]:
        """What the state file keeps about this cluster (no key material, no token)."""
        return {
            "name": self.spec.name,
            "context": self.spec.context,
            "root": str(self.root),
            "ports": self.ports,
            "api_url": self.api_url,
        }


def prepare(state_dir: Path, spec: ClusterSpec, bin_dir: Path) -> ClusterRuntime:
    """Create the cluster's folder, PKI, ports, kubeconfig and kwok stage file."""
    root = state_dir / spec.name
    for sub in ("logs", "volumes", "etcd", "certs", "scratch"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ports = {
        "etcd": free_port(),
        "etcd-peer": free_port(),
        "kube-apiserver": free_port(),
        "kube-controller-manager": free_port(),
        "kube-scheduler": free_port(),
        "kwok": free_port(),
    }
    pki = make_cluster_pki(root / "pki", spec.name, spec.service_ip)
    rt = ClusterRuntime(spec=spec, root=root, ports=ports, pki=pki)
    write_kubeconfig(rt.kubeconfig, [rt])
    rt.kubeconfig.chmod(0o600)
    _write_kwok_stages(root / "kwok-stages.yaml", bin_dir / "kwok-data")
    return rt


def _write_kwok_stages(path: Path, kwok_data: Path) -> None:
    """Upstream default stages, with pod-ready gated on :data:`VOLUMES_READY`."""
    docs = []
    for name in KWOK_STAGES:
        stage = yaml.safe_load((kwok_data / name).read_text())
        if stage["metadata"]["name"] == "pod-ready":
            stage["spec"]["selector"]["matchExpressions"].append(
                {"key": f'.metadata.annotations["{VOLUMES_READY}"]', "operator": "In", "values": ["true"]}
            )
        docs.append(stage)
    # Pods without volumes still accept `kubectl exec`: their commands run in a scratch folder.
    scratch = str(path.parent / "scratch")
    docs.append(
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterExec",
            "metadata": {"name": "scratch"},
            "spec": {"execs": [{"local": {"workDir": scratch, "envs": [{"name": "VOLUME_DIR", "value": scratch}]}}]},
        }
    )
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def kwok_crds(bin_dir: Path) -> list[dict[str, Any]]:
    """The Exec CRD of the kwok release that was built (per-pod Execs are created at run time)."""
    return [yaml.safe_load((bin_dir / "kwok-data" / n).read_text()) for n in KWOK_CRDS]


def write_kubeconfig(path: Path, clusters: list[ClusterRuntime]) -> None:
    """Write a kubeconfig with one context per cluster (token auth), mode 0600."""
    cfg: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "users": [],
        "contexts": [],
        "current-context": clusters[0].spec.context,
        "preferences": {},
    }
    for rt in clusters:
        assert rt.pki is not None
        ca = base64.b64encode(rt.pki.ca_cert.read_bytes()).decode()
        name = rt.spec.context
        cfg["clusters"].append({"name": name, "cluster": {"server": rt.api_url, "certificate-authority-data": ca}})
        cfg["users"].append({"name": f"{name}-admin", "user": {"token": rt.pki.admin_token}})
        cfg["contexts"].append({"name": name, "context": {"cluster": name, "user": f"{name}-admin"}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def _etcd_flags(rt: ClusterRuntime) -> list[str]:
    peer, client = (f"http://127.0.0.1:{rt.ports[k]}" for k in ("etcd-peer", "etcd"))
    # fmt: off
    return [f"--name={rt.spec.name}", f"--data-dir={rt.root / 'etcd'}", f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}", f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}", f"--initial-cluster={rt.spec.name}={peer}",
            "--unsafe-no-fsync", "--log-level=warn", "--snapshot-count=5000", "--quota-backend-bytes=1073741824"]
    # fmt: on


def _apiserver_flags(rt: ClusterRuntime, pki: ClusterPki) -> list[str]:
    # fmt: off
    return [f"--etcd-servers=http://127.0.0.1:{rt.ports['etcd']}", "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1", f"--secure-port={rt.ports['kube-apiserver']}",
            f"--tls-cert-file={pki.apiserver_cert}", f"--tls-private-key-file={pki.apiserver_key}",
            f"--client-ca-file={pki.ca_cert}", f"--service-cluster-ip-range={rt.spec.service_cidr}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}", f"--service-account-signing-key-file={pki.sa_key}",
            f"--token-auth-file={pki.tokens_csv}", "--authorization-mode=RBAC", "--allow-privileged=true",
            # kwok's fake nodes publish InternalIP 127.0.0.1: that is where pods/exec must go
            "--kubelet-preferred-address-types=InternalIP",
            "--profiling=false", "--enable-priority-and-fairness=false", "--event-ttl=30m"]
    # fmt: on


def _controller_flags(rt: ClusterRuntime, pki: ClusterPki, component: str) -> list[str]:
    """Flags of kube-controller-manager and kube-scheduler (both authenticate with the admin kubeconfig)."""
    kc = str(rt.kubeconfig)
    # fmt: off
    flags = [f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
             "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={rt.ports[component]}",
             f"--cert-dir={rt.root / 'certs' / component}", "--profiling=false"]
    if component == "kube-controller-manager":
        flags += [f"--cluster-name={rt.spec.name}", f"--service-account-private-key-file={pki.sa_key}",
                  f"--root-ca-file={pki.ca_cert}", f"--service-cluster-ip-range={rt.spec.service_cidr}"]
    # fmt: on
    return flags


def _kwok_flags(rt: ClusterRuntime, pki: ClusterPki) -> list[str]:
    port = rt.ports["kwok"]
    # fmt: off
    return [f"--kubeconfig={rt.kubeconfig}", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--cidr={rt.spec.pod_cidr}", "--node-ip=127.0.0.1", f"--node-port={port}",
            f"--server-address=127.0.0.1:{port}", f"--tls-cert-file={pki.kwok_cert}",
            f"--tls-private-key-file={pki.kwok_key}", f"--config={rt.root / 'kwok-stages.yaml'}",
            "--enable-crds=Exec", "--node-lease-duration-seconds=40"]
    # fmt: on


def component_argv(rt: ClusterRuntime, component: str, bin_dir: Path) -> list[str]:
    """Command line of one control-plane component of ``rt`` (every listener on 127.0.0.1).

    Raises:
        ValueError: ``component`` is not one of :data:`COMPONENTS`.
    """
    assert rt.pki is not None
    if component == "etcd":
        flags = _etcd_flags(rt)
    elif component == "kube-apiserver":
        flags = _apiserver_flags(rt, rt.pki)
    elif component in ("kube-controller-manager", "kube-scheduler"):
        flags = _controller_flags(rt, rt.pki, component)
    elif component == "kwok":
        flags = _kwok_flags(rt, rt.pki)
    else:
        raise ValueError(f"unknown component {component!r}")
    return [str(bin_dir / component), *flags]


def health_url(rt: ClusterRuntime, component: str) -> str:
    """URL that answers 200 once ``component`` serves."""
    port = rt.ports[component]
    if component == "etcd":
        return f"http://127.0.0.1:{port}/health"
    return f"https://127.0.0.1:{port}/{'readyz' if component == 'kube-apiserver' else 'healthz'}"
