"""Keep-list overrides (KEEP4, KEEP5): cert-manager material and Helm ownership."""

from __future__ import annotations

import sys
from pathlib import Path

from k3smig_lib.core.clean import CleanOptions, clean_objects

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))
from cleanfixtures import load  # noqa: E402


def test_certificate_secret_named_only_by_a_certificate_is_kept_without_its_owner() -> None:
    certificate = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"secretName": "api-tls", "issuerRef": {"name": "le", "kind": "ClusterIssuer"}},
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": "api-tls",
            "namespace": "shop",
            "ownerReferences": [
                {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": "api", "uid": "9f1c"}
            ],
        },
        "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"},
    }
    report = clean_objects([certificate, secret])
    kept = report.get("Secret/shop/api-tls")
    assert kept.cleaned is not None and "ownerReferences" not in kept.cleaned["metadata"]
    assert "KEEP4" in kept.rule_ids
    alone = clean_objects([secret]).objects[0]
    assert alone.dropped and alone.changes[0].rule_id == "W1"


def test_acme_key_is_kept_only_when_a_kept_issuer_references_it() -> None:
    objects = load("clean-certs.yaml")
    without_issuer = [o for o in objects if o["kind"] != "ClusterIssuer"]
    key = "Secret/cert-manager/letsencrypt-prod-account-key"
    assert not clean_objects(objects).get(key).dropped
    assert clean_objects(without_issuer).get(key).changes[0].rule_id == "W11"


def test_helm_ownership_is_stripped_when_releases_are_not_kept() -> None:
    report = clean_objects(load("clean-helm.yaml"))
    deploy = report.get("Deployment/vaultwarden/vaultwarden")
    assert deploy.cleaned is not None
    assert "annotations" not in deploy.cleaned["metadata"]
    assert deploy.cleaned["metadata"]["labels"] == {
        "app.kubernetes.io/instance": "vaultwarden",
        "app.kubernetes.io/name": "vaultwarden",
        "helm.sh/chart": "vaultwarden-0.23.1",
    }
    assert sorted(c.path for c in deploy.changes if c.rule_id == "KEEP5") == [
        "metadata.annotations['meta.helm.sh/release-name']",
        "metadata.annotations['meta.helm.sh/release-namespace']",
        "metadata.labels['app.kubernetes.io/managed-by']",
    ]


def test_helm_ownership_survives_when_releases_are_kept() -> None:
    report = clean_objects(load("clean-helm.yaml"), CleanOptions(keep_helm_releases=True))
    svc = report.get("Service/vaultwarden/vaultwarden")
    assert svc.cleaned is not None
    assert svc.cleaned["metadata"]["annotations"]["meta.helm.sh/release-name"] == "vaultwarden"
    assert svc.cleaned["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert [c.action for c in svc.changes if c.rule_id == "KEEP5"] == ["keep"]
    record = report.get("Secret/vaultwarden/sh.helm.release.v1.vaultwarden.v3")
    assert record.cleaned is not None and record.cleaned["type"] == "helm.sh/release.v1"
