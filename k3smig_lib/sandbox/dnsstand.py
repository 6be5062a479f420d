"""The sandbox's DNS stand: a real authoritative server and real external-dns on both clusters.

The cutover is tested against the same parts a production cutover meets, with the Scaleway DNS API
swapped for RFC 2136: ``knotd`` (Debian's Knot DNS) serves the zone on 127.0.0.1 and accepts dynamic
updates and zone transfers signed with a TSIG key generated here; each cluster gets an
``external-dns/external-dns`` Deployment with the ``rfc2136`` provider, exactly as a user (source) and
the Ansible role (target) install it, but with the sandbox's flags. The sandbox has no kubelet, so
:mod:`k3smig_lib.sandbox.edsupervisor` plays that part for these two Deployments only: it runs the
real ``external-dns`` binary with the Deployment's arguments while it has replicas.

The zone starts with records the migration must never touch: one owned by another cluster's
external-dns (``other-cluster``) and one written by hand. The source also publishes a host the
migration does not move (an Ingress in its ``external-dns`` namespace, a platform namespace the cleaner
drops): a record of the very owner the target migrates from, the one ``--migrate-from-txt-owner``
would delete without the cutover's guard (external-dns#5993). The TSIG secret lives in the state folder
(mode 0600) and in a Secret of each cluster, like the sandbox's PKI; it never appears in an argument
list or a log.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k3smig_lib.core.objects import Obj
from k3smig_lib.errors import ToolMissingError
from k3smig_lib.k8s.client import ClusterRef, Kube
from k3smig_lib.sandbox.procs import free_port, log_tail, port_is_listening, start_process, wait_until

ZONE = "example.org"
TSIG_KEY_NAME = "k3smig-sandbox"
TSIG_ALGORITHM = "hmac-sha256"
#: external-dns owner ids: the source cluster's and the new K3s cluster's (Settings.txt_owner_id default).
SOURCE_OWNER = "prod-k8s"
TARGET_OWNER = "k3smig"
#: The source's load balancer address: the example's Ingresses carry it in their status.
SOURCE_LB = "51.159.26.118"
#: The VM's public address in the sandbox: a documentation address (RFC 5737), published, never contacted.
VM_ADDRESS = "198.51.100.20"
EXTERNAL_DNS = ("external-dns", "external-dns")
#: A host the source's external-dns publishes and the migration leaves on the source (not planned).
UNPLANNED_HOST = f"status.{ZONE}"
TSIG_SECRET_NAME = "external-dns-rfc2136"
TSIG_ENV = "EXTERNAL_DNS_RFC2136_TSIG_SECRET"
#: Records present before any external-dns runs, which the cutover must leave exactly as they are.
FOREIGN_RECORDS = (
    ("mail", 3600, "A", "192.0.2.25"),
    ("a-mail", 3600, "TXT", '"heritage=external-dns,external-dns/owner=other-cluster,'
                            'external-dns/resource=ingress/mail/mail"'),
    ("www", 3600, "A", "192.0.2.80"),
)


@dataclass(frozen=True)
class DnsStand:
    """Where the stand's DNS server listens and how to sign for it (the secret stays in its file)."""

    host: str
    port: int
    zone: str
    key_name: str
    key_file: Path

    def tsig_secret(self) -> str:
        """The TSIG secret (base64), read from the state folder for the tests' zone transfers."""
        return self.key_file.read_text().strip()

    def to_json(self) -> dict[str, Any]:
        """Plain dict for the sandbox state file (no secret)."""
        return {"host": self.host, "port": self.port, "zone": self.zone, "key_name": self.key_name,
                "key_file": str(self.key_file)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DnsStand:
        """Inverse of :meth:`to_json`."""
        return cls(str(data["host"]), int(data["port"]), str(data["zone"]), str(data["key_name"]),
                   Path(data["key_file"]))


def _knot_config(root: Path, port: int, secret: str) -> str:
    return f"""server:
    rundir: "{root}"
    listen: 127.0.0.1@{port}
control:
    listen: "{root}/knot.sock"
database:
    storage: "{root}/db"
log:
  - target: stderr
    any: info
key:
  - id: {TSIG_KEY_NAME}
    algorithm: {TSIG_ALGORITHM}
    secret: {secret}
acl:
  - id: external-dns
    key: {TSIG_KEY_NAME}
    action: [update, transfer]
zone:
  - domain: {ZONE}
    file: "{root}/{ZONE}.zone"
    acl: external-dns
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: changes
"""


def _zone_file() -> str:
    lines = [f"$ORIGIN {ZONE}.", "$TTL 3600",
             f"@ 3600 IN SOA ns1.{ZONE}. hostmaster.{ZONE}. 1 3600 600 604800 60", f"@ 3600 IN NS ns1.{ZONE}.",
             "ns1 3600 IN A 127.0.0.1"]
    lines += [f"{name} {ttl} IN {rtype} {value}" for name, ttl, rtype, value in FOREIGN_RECORDS]
    return "\n".join(lines) + "\n"


def external_dns_deployment(stand: DnsStand, owner: str, policy: str) -> Obj:
    """The external-dns Deployment of one cluster (rfc2136 provider, TXT registry, ``owner``, ``policy``).

    The TSIG secret comes from a Secret through the environment (external-dns reads every flag from
    ``EXTERNAL_DNS_<FLAG>``), never from the arguments.
    """
    args = ["--source=ingress", "--provider=rfc2136", f"--rfc2136-host={stand.host}", f"--rfc2136-port={stand.port}",
            f"--rfc2136-zone={stand.zone}", f"--rfc2136-tsig-keyname={stand.key_name}",
            f"--rfc2136-tsig-secret-alg={TSIG_ALGORITHM}", "--rfc2136-tsig-axfr", "--rfc2136-min-ttl=60s",
            "--registry=txt", f"--txt-owner-id={owner}", f"--policy={policy}", f"--domain-filter={stand.zone}",
            "--interval=2s", "--log-level=debug", f"--metrics-address=127.0.0.1:{free_port()}",
            # external-dns >= 0.22 reads external-dns.kubernetes.io/ annotations; migrated Ingresses carry the
            # external-dns.alpha.kubernetes.io/ ones every earlier release reads (the cleaner's T6 too)
            "--enable-legacy-annotation-prefix"]
    env = [{"name": TSIG_ENV, "valueFrom": {"secretKeyRef": {"name": TSIG_SECRET_NAME, "key": "tsig-secret"}}}]
    labels = {"app.kubernetes.io/name": "external-dns"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": EXTERNAL_DNS[1], "namespace": EXTERNAL_DNS[0], "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                         "name": "external-dns", "image": "registry.k8s.io/external-dns/external-dns:v0.23.0",
                         "args": args, "env": env}]}}}}


def _install(ref: ClusterRef, stand: DnsStand, owner: str, policy: str) -> None:
    kube = Kube.of(ref)
    ns = EXTERNAL_DNS[0]
    kube.request("POST", "/api/v1/namespaces", counter="writes", body={"metadata": {"name": ns}}, accept=(409,))
    secret = {"metadata": {"name": TSIG_SECRET_NAME},
              "data": {"tsig-secret": base64.b64encode(stand.tsig_secret().encode()).decode()}}
    kube.request("POST", f"/api/v1/namespaces/{ns}/secrets", counter="writes", body=secret, accept=(409,))
    kube.request("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", counter="writes",
                 body=external_dns_deployment(stand, owner, policy), accept=(409,))
    if ref.side == "source":
        kube.request("POST", f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses", counter="writes",
                     body=unplanned_ingress(), accept=(409,))


def unplanned_ingress() -> Obj:
    """The source's Ingress for :data:`UNPLANNED_HOST` (no class: only external-dns reads it)."""
    backend = {"service": {"name": "status", "port": {"number": 80}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "status", "namespace": EXTERNAL_DNS[0]},
            "spec": {"rules": [{"host": UNPLANNED_HOST, "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": backend}]}}]}}


def tools_bin() -> Path:
    """Folder of the Go tools built by ``tools/build-*.sh`` (``external-dns``, ``traefik``)."""
    from k3smig_lib.core.config import PACKAGE_ROOT

    return PACKAGE_ROOT / ".cache" / "tools" / "bin"


def start(state_dir: Path, state: dict[str, Any], kubeconfig: Path, contexts: dict[str, str]) -> DnsStand:
    """Start knotd and the external-dns supervisor, and install external-dns on both clusters.

    Args:
        state_dir: the sandbox state folder (the stand lives in ``dns/``).
        state: the sandbox state; the started processes are appended (``down`` stops them).
        kubeconfig: the sandbox kubeconfig.
        contexts: ``{"source": …, "target": …}`` context names.

    Returns:
        The stand's address and key name.

    Raises:
        ToolMissingError: ``knotd`` or ``external-dns`` is missing (``make system-deps``).
    """
    knotd = Path("/usr/sbin/knotd")
    binary = tools_bin() / "external-dns"
    for need, fix in ((knotd, "install Debian's knot (scripts/install-system-deps.sh)"),
                      (binary, "run tools/build-external-dns.sh")):
        if not need.is_file():
            raise ToolMissingError(f"{need} is missing: the sandbox's DNS stand needs it", fix=fix)
    root = state_dir / "dns"
    (root / "db").mkdir(parents=True, exist_ok=True)
    key_file = root / "tsig.secret"
    key_file.touch(mode=0o600)
    key_file.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    port = free_port()
    stand = DnsStand("127.0.0.1", port, ZONE, TSIG_KEY_NAME, key_file)
    conf = root / "knot.conf"
    conf.touch(mode=0o600)
    conf.write_text(_knot_config(root, port, stand.tsig_secret()))
    (root / f"{ZONE}.zone").write_text(_zone_file())
    rec = start_process("dns/knotd", [str(knotd), "-c", str(conf)], root / "knotd.log", port=port, cwd=root)
    state["processes"].append(rec.to_json())
    wait_until(lambda: port_is_listening(port), 30, "knotd", lambda: log_tail(rec.log))
    _install(ClusterRef(str(kubeconfig), contexts["source"], "source"), stand, SOURCE_OWNER, "sync")
    _install(ClusterRef(str(kubeconfig), contexts["target"], "target"), stand, TARGET_OWNER, "upsert-only")
    argv = [sys.executable, "-m", "k3smig_lib.sandbox.edsupervisor", f"--kubeconfig={kubeconfig}",
            f"--source-context={contexts['source']}", f"--target-context={contexts['target']}",
            f"--binary={binary}", f"--work={root}", f"--source-lb={SOURCE_LB}"]
    sup = start_process("dns/external-dns-supervisor", argv, root / "supervisor.log", cwd=root)
    state["processes"].append(sup.to_json())
    state["dns"] = stand.to_json()
    (root / "stand.json").write_text(json.dumps(stand.to_json(), indent=2))
    os.chmod(root, 0o700)
    return stand
