"""cert-manager, installed with Helm, with its CRDs, the ACME ClusterIssuer and its account key.

The controller runs with ``--enable-certificate-owner-ref``, so the applications' TLS Secrets are
owned by their Certificates. A migration drops cert-manager itself (docs/cleaning-rules.md W11) but keeps
the ACME account-key Secret and the TLS Secrets (KEEP4), or Let's Encrypt re-issues everything.
"""

from __future__ import annotations

from _gen import basics, crds, helm, networking, pki
from _gen.addon_common import RESTART, controller_deployment, helm_meta, helm_object, pods_of
from _gen.common import CLUSTER_CREATED, Obj, ts_add
from _gen.nodes import leader_lease
from _gen.server import KUBECTL, Cluster, Write, applied
from _gen.topology import NODES
from _gen.workloads import Placement, deployment

NS = "cert-manager"
CHART = helm.Chart(
    "cert-manager",
    "v1.15.1",
    "v1.15.1",
    "A Helm chart for cert-manager",
    "https://cert-manager.io",
    {"deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\n{{- /* ... */}}\n"},
    {"crds": {"enabled": False, "keep": True}, "replicaCount": 1},
)
_OWNER_REF_FLAG = "--enable-certificate-owner-ref=true"
_COMPONENTS: list[tuple[str, list[str], int]] = [
    (
        "controller",
        ["--v=2", "--cluster-resource-namespace=$(POD_NAMESPACE)", "--leader-election-namespace=kube-system"]
        + [_OWNER_REF_FLAG],
        9402,
    ),
    ("cainjector", ["--v=2", "--leader-election-namespace=kube-system"], 9402),
    (
        "webhook",
        ["--v=2", "--secure-port=10250", "--dynamic-serving-ca-secret-namespace=$(POD_NAMESPACE)"]
        + ["--dynamic-serving-ca-secret-name=cert-manager-webhook-ca"],
        10250,
    ),
]


def _labels(component: str) -> dict[str, str]:
    name = "cert-manager" if component == "controller" else component
    return {"app.kubernetes.io/component": component, "app.kubernetes.io/name": name}


def _component(c: Cluster, created: str, part: str, args: list[str], port: int) -> list[Obj]:
    name = "cert-manager" if part == "controller" else f"cert-manager-{part}"
    labels = _labels(part)
    sa_labels, sa_annotations = helm_meta(labels, CHART, NS, NS)
    sa = basics.service_account(c, NS, name, created, manager="helm", labels=sa_labels, annotations=sa_annotations)
    ports = [{"name": "http-metrics" if port == 9402 else "https", "containerPort": port}]
    image = f"quay.io/jetstack/cert-manager-{part}:v1.15.1"
    container = name.rsplit("-", 1)[-1]
    dep = helm_object(controller_deployment(name, NS, (container, image), labels, args, ports), CHART, NS, NS)
    node = NODES[1 if part == "webhook" else 0]
    return [sa, deployment(c, dep, created, [Placement(node, RESTART)], manager="helm")]


def _services(c: Cluster, created: str) -> list[Obj]:
    services = []
    for name, port, target, component in (
        ("cert-manager", 9402, "http-metrics", "controller"),
        ("cert-manager-webhook", 443, "https", "webhook"),
    ):
        labels = _labels(component)
        manifest = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {"selector": labels, "ports": [{"name": target, "port": port, "targetPort": target}]},
        }
        pods = pods_of(c.objects, NS, {"app.kubernetes.io/component": component})
        services.append(networking.service(c, helm_object(manifest, CHART, NS, NS), created, pods=pods, manager="helm"))
    return services


def _leases_and_webhook_ca(c: Cluster, created: str) -> None:
    for lease, component in (
        ("cert-manager-controller", "controller"),
        ("cert-manager-cainjector-leader-election", "cainjector"),
    ):
        pod = pods_of(c.objects, NS, {"app.kubernetes.io/component": component})[0]
        holder = f"{pod['metadata']['name']}-external-cert-manager-controller"
        leader_lease(c, "kube-system", lease, holder, ts_add(created, 30), f"cert-manager-{component}")
    ca = pki.CertSpec("cert-manager-webhook-ca", ts_add(created, 20), ts_add(created, 20 + 365 * 86_400), is_ca=True)
    key = pki.rsa_key("cert-manager-webhook-ca")
    pem = pki.certificate(ca, key)
    basics.secret(
        c,
        NS,
        "cert-manager-webhook-ca",
        ts_add(created, 20),
        {"ca.crt": pem, "tls.crt": pem, "tls.key": pki.private_pem(key)},
        secret_type="kubernetes.io/tls",
        manager="cert-manager-webhook-dynamic-authority",
        annotations={"cert-manager.io/allow-direct-injection": "true"},
    )


def _acme(c: Cluster, created: str) -> None:
    key = pki.rsa_key("letsencrypt-prod-account")
    account_key = {"tls.key": pki.private_pem(key)}
    basics.secret(
        c, NS, "letsencrypt-prod-account-key", ts_add(created, 5), account_key, manager="cert-manager-clusterissuers"
    )
    acme = {
        "email": "ops@example.org",
        "server": "https://acme-v02.api.letsencrypt.org/directory",
        "privateKeySecretRef": {"name": "letsencrypt-prod-account-key"},
        "solvers": [{"http01": {"ingress": {"ingressClassName": "nginx"}}}],
    }
    issuer = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "ClusterIssuer",
        "metadata": {"name": "letsencrypt-prod"},
        "spec": {"acme": acme},
    }
    ready = {
        "lastTransitionTime": ts_add(created, 6),
        "message": "The ACME account was registered with the ACME server",
        "observedGeneration": 1,
        "reason": "ACMEAccountRegistered",
        "status": "True",
        "type": "Ready",
    }
    account = {
        "lastPrivateKeyHash": "T9rb+4kqxXQ7bTqUazg8RHyIbpoU4mGm6V0ZzsECsFE=",
        "lastRegisteredEmail": "ops@example.org",
        "uri": "https://acme-v02.api.letsencrypt.org/acme/acct/1638204917",
    }
    status = Write(
        "cert-manager-clusterissuers",
        ts_add(created, 6),
        {"status": {"acme": account, "conditions": [ready]}},
        "status",
    )
    applied(c, issuer, created, manager=KUBECTL, writes=(status,))


def build(c: Cluster) -> None:
    """Create cert-manager, its CRDs, Services, leases, webhook CA, ClusterIssuer and release Secrets."""
    created = ts_add(CLUSTER_CREATED, 3_383)
    basics.namespace(c, NS, ts_add(created, -5))
    objects: list[Obj] = crds.build(c, created)
    for part, args, port in _COMPONENTS:
        objects += _component(c, created, part, args, port)
    objects += _services(c, created)
    _leases_and_webhook_ca(c, created)
    _acme(c, ts_add(created, 600))
    values = {"crds": {"enabled": True}, "extraArgs": [_OWNER_REF_FLAG]}
    revisions = [
        helm.Revision(created, values),
        helm.Revision("2024-08-19T07:42:10Z", {**values, "prometheus": {"enabled": True}}),
    ]
    helm.release_secrets(c, CHART, NS, NS, revisions, objects)
