"""The ingress-nginx controller, installed with Helm, behind a Scaleway load balancer.

On the target ingress-nginx comes from Ansible, so a migration drops all of this (docs/cleaning-rules.md W11).
Its LoadBalancer Service shows the Scaleway cloud controller's annotations and address.
"""

from __future__ import annotations

from _gen import basics, helm, networking
from _gen.addon_common import RESTART, controller_deployment, helm_meta, helm_object, pods_of, webhook
from _gen.common import CLUSTER_CREATED, Obj, ts_add
from _gen.nodes import leader_lease
from _gen.server import Cluster, applied
from _gen.topology import NODES
from _gen.workloads import Placement, deployment

NS = "ingress-nginx"
INGRESS_LB_IP = "51.159.26.118"
CHART = helm.Chart(
    "ingress-nginx",
    "4.10.1",
    "1.10.1",
    "Ingress controller for Kubernetes using NGINX",
    "https://github.com/kubernetes/ingress-nginx",
    {"controller-deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\n{{- /* ... */}}\n"},
    {"controller": {"replicaCount": 1, "ingressClass": "nginx"}},
)
_LABELS = {"app.kubernetes.io/component": "controller", "app.kubernetes.io/name": "ingress-nginx"}
_PROXY_PROTOCOL = "service.beta.kubernetes.io/scw-loadbalancer-proxy-protocol-v2"
_ARGS = [
    "/nginx-ingress-controller",
    "--publish-service=$(POD_NAMESPACE)/ingress-nginx-controller",
    "--election-id=ingress-nginx-leader",
    "--controller-class=k8s.io/ingress-nginx",
    "--ingress-class=nginx",
    "--configmap=$(POD_NAMESPACE)/ingress-nginx-controller",
]


def _helm(manifest: Obj) -> Obj:
    return helm_object(manifest, CHART, NS, NS)


def _controller(c: Cluster, created: str) -> list[Obj]:
    sa_labels, sa_annotations = helm_meta(_LABELS, CHART, NS, NS)
    sa = basics.service_account(c, NS, NS, created, manager="helm", labels=sa_labels, annotations=sa_annotations)
    config = _helm(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "data": {"allow-snippet-annotations": "false", "use-proxy-protocol": "true"},
            "metadata": {"name": "ingress-nginx-controller", "namespace": NS, "labels": _LABELS},
        }
    )
    ports = [{"name": n, "containerPort": p} for n, p in (("http", 80), ("https", 443), ("webhook", 8443))]
    image = "registry.k8s.io/ingress-nginx/controller:v1.10.1"
    dep = _helm(controller_deployment("ingress-nginx-controller", NS, ("controller", image), _LABELS, _ARGS, ports))
    return [
        sa,
        applied(c, config, created, manager="helm"),
        deployment(c, dep, created, [Placement(NODES[1], RESTART)], manager="helm"),
    ]


def _load_balancer(c: Cluster, created: str, pods: list[Obj]) -> Obj:
    annotations = {
        _PROXY_PROTOCOL: "true",
        "service.beta.kubernetes.io/scw-loadbalancer-use-hostname": "true",
        "service.beta.kubernetes.io/scw-loadbalancer-type": "LB-S",
    }
    ports = [{"name": n, "port": p, "targetPort": n, "appProtocol": n} for n, p in (("http", 80), ("https", 443))]
    svc = _helm(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "ingress-nginx-controller", "namespace": NS, "labels": _LABELS},
            "spec": {"type": "LoadBalancer", "selector": _LABELS, "ports": ports},
        }
    )
    svc["metadata"]["annotations"] = {**annotations, **svc["metadata"]["annotations"]}
    lb_id = ("service.beta.kubernetes.io/scw-loadbalancer-id", "fr-par-1/6a1f4c1e-2b7d-4f7e-9f3a-0c6e1d2b3a49")
    lb = networking.LoadBalancer(INGRESS_LB_IP, annotations=(lb_id,))
    return networking.service(c, svc, created, pods=pods, manager="helm", lb=lb)


def _admission(c: Cluster, created: str) -> list[Obj]:
    ingress_class = _helm(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "nginx", "labels": _LABELS},
            "spec": {"controller": "k8s.io/ingress-nginx"},
        }
    )
    hook = webhook(
        "validate.nginx.ingress.kubernetes.io",
        NS,
        "ingress-nginx-controller-admission",
        "/networking/v1/ingresses",
        ["networking.k8s.io"],
        ["ingresses"],
    )
    config = _helm(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "ingress-nginx-admission", "labels": _LABELS},
            "webhooks": [hook],
        }
    )
    return [applied(c, ingress_class, created, manager="helm"), applied(c, config, created, manager="helm")]


def build(c: Cluster) -> None:
    """Create the namespace, the controller, its Services, IngressClass, webhook, lease and release Secret."""
    created = ts_add(CLUSTER_CREATED, 2_869)
    basics.namespace(c, NS, ts_add(created, -5), labels={"app.kubernetes.io/name": "ingress-nginx"})
    objects = _controller(c, created)
    pods = pods_of(c.objects, NS, _LABELS)
    objects.append(_load_balancer(c, created, pods))
    objects += _admission(c, created)
    holder = pods[0]["metadata"]["name"]
    leader_lease(c, NS, "ingress-nginx-leader", holder, ts_add(created, 40), "nginx-ingress-controller", duration=30)
    values = {"controller": {"service": {"annotations": {_PROXY_PROTOCOL: "true"}}}}
    helm.release_secrets(c, CHART, NS, NS, [helm.Revision(created, values)], objects)
