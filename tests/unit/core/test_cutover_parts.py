"""The offline parts of the cutover: annotation verdicts, the re-issue predictor, zone reading, flag edits."""

from __future__ import annotations

import base64
import copy
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from k3smig_lib.backends.snapshot import SnapshotSource
from k3smig_lib.core.certplan import LE_WEEKLY_LIMIT, issuances_per_domain, predict, registered_domain
from k3smig_lib.core.dnszone import Record, Server, changed, labels, owner_of, owners
from k3smig_lib.core.nginxannot import annotation_risks, classify
from k3smig_lib.core.objects import Obj, ref
from k3smig_lib.k8s.handover import set_flags
from k3smig_lib.phases.cutover import Handover, foreign_changes, outside_plan

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "prod-cluster"
PINNED = datetime(2025, 1, 20, 10, tzinfo=UTC)  # the example's export time (parameters/demo.yaml as_of)


@pytest.fixture(scope="module")
def example() -> dict[str, Obj]:
    return {ref(o).id: o for o in SnapshotSource(EXAMPLE).list_objects()}


@pytest.mark.parametrize(("name", "support", "middleware"), [
    ("ssl-redirect", "supported", ""),
    ("auth-url", "supported", ""),
    ("proxy-body-size", "middleware", "Buffering (maxRequestBodyBytes)"),
    ("whitelist-source-range", "middleware", "IPAllowList (sourceRange)"),
    ("rewrite-target", "middleware", "ReplacePathRegex"),
    ("configuration-snippet", "unsupported", ""),
    ("enable-modsecurity", "unsupported", ""),
    ("lua-resty-waf", "unsupported", ""),
    ("some-future-annotation", "unsupported", ""),
])
def test_every_nginx_annotation_gets_a_verdict(name: str, support: str, middleware: str) -> None:
    verdict = classify(f"nginx.ingress.kubernetes.io/{name}")
    assert (verdict.support, verdict.middleware) == (support, middleware)


def test_inventory_risks_are_warnings_for_unsupported_and_info_for_middleware_and_none_with_ingress_nginx() -> None:
    ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "w", "namespace": "n",
           "annotations": {"nginx.ingress.kubernetes.io/server-snippet": "x",
                           "nginx.ingress.kubernetes.io/limit-rps": "5"}}}
    risks = annotation_risks([ing], "traefik")
    assert sorted((r.id, r.severity) for r in risks) == [("nginx-annotation-middleware", "info"),
                                                         ("nginx-annotation-unsupported", "warning")]
    assert annotation_risks([ing], "ingress-nginx") == []


def test_the_examples_certificates_are_kept_at_the_pinned_time(example: dict[str, Obj]) -> None:
    cert = example["Certificate/monitoring/grafana-tls"]
    p = predict(cert, example["Secret/monitoring/grafana-tls"], PINNED)
    assert p.verdict == "kept" and p.not_after == "2025-03-07" and p.renewal == "2025-02-05" and p.serial


def test_each_documented_trigger_predicts_a_reissue(example: dict[str, Obj]) -> None:
    cert, secret = example["Certificate/monitoring/grafana-tls"], example["Secret/monitoring/grafana-tls"]
    assert predict(cert, None, PINNED).reissue == "TLS Secret missing on the target"
    assert "renewBefore" in predict(cert, secret, PINNED + timedelta(days=20)).reissue
    names = copy.deepcopy(cert)
    names["spec"]["dnsNames"] = ["grafana.example.org", "metrics.example.org"]
    assert "DNS names differ" in predict(names, secret, PINNED).reissue
    issuer = copy.deepcopy(secret)
    issuer["metadata"]["annotations"]["cert-manager.io/issuer-name"] = "letsencrypt-staging"
    assert "issuer annotations differ" in predict(cert, issuer, PINNED).reissue
    algorithm = copy.deepcopy(cert)
    algorithm["spec"]["privateKey"] = {"algorithm": "ECDSA", "size": 256}
    assert "private key is RSA 2048" in predict(algorithm, secret, PINNED).reissue
    swapped = copy.deepcopy(secret)
    swapped["data"]["tls.key"] = example["Secret/vaultwarden/vaultwarden-tls"]["data"]["tls.key"]
    assert "does not match" in predict(cert, swapped, PINNED).reissue
    broken = copy.deepcopy(secret)
    broken["data"]["tls.crt"] = base64.b64encode(b"not a certificate").decode()
    assert predict(cert, broken, PINNED).reissue == "tls.crt missing or unreadable"


def test_lets_encrypt_issuances_are_counted_per_registered_domain(example: dict[str, Obj]) -> None:
    cert = example["Certificate/monitoring/grafana-tls"]
    p = predict(cert, None, PINNED)
    assert issuances_per_domain([p] * (LE_WEEKLY_LIMIT + 1), {p.certificate}) == {"example.org": 51}
    assert issuances_per_domain([p], set()) == {}  # not an ACME certificate: no Let's Encrypt issuance
    assert registered_domain("*.shop.example.co.uk") == "example.co.uk"


RECORDS = [
    Record("grafana.example.org", "A", "51.159.26.118", 60),
    Record("a-grafana.example.org", "TXT", '"heritage=external-dns,external-dns/owner=prod-k8s,'
           'external-dns/resource=ingress/monitoring/grafana"', 60),
    Record("legacy.example.org", "A", "51.159.26.118", 60),
    Record("legacy.example.org", "TXT", '"heritage=external-dns,external-dns/owner=prod-k8s"', 60),
    Record("mail.example.org", "A", "192.0.2.25", 3600),
    Record("a-mail.example.org", "TXT", '"heritage=external-dns,external-dns/owner=other-cluster"', 3600),
    Record("example.org", "SOA", "ns1. h. 1 2 3 4 5", 3600),
]


def test_ownership_is_read_from_both_txt_formats() -> None:
    assert owners(RECORDS) == {"grafana.example.org": "prod-k8s", "legacy.example.org": "prod-k8s",
                               "mail.example.org": "other-cluster"}
    assert owner_of(RECORDS, "grafana.example.org.") == "prod-k8s"
    assert labels('"v=spf1 -all"') == {}


def test_the_guard_names_what_migrate_from_txt_owner_would_delete_and_the_regex_hides_it() -> None:
    hosts = ["grafana.example.org"]
    assert outside_plan(RECORDS, "prod-k8s", hosts) == ["legacy.example.org"]
    regex = Handover(hosts, "example.org", Server("127.0.0.1", 53), "", ("external-dns", "external-dns")).regex()


    assert re.match(regex, "grafana.example.org") and re.match(regex, "a-grafana.example.org")
    assert not re.match(regex, "legacy.example.org") and not re.match(regex, "xgrafana.example.org")


def test_zone_diffs_ignore_the_serial_and_name_foreign_changes() -> None:
    after = [r for r in RECORDS if r.name != "mail.example.org"] + [Record("example.org", "SOA", "ns1. h. 2 2 3 4 5",
                                                                           3600)]
    assert changed(RECORDS, after) == {"mail.example.org"}
    assert foreign_changes(RECORDS, after, ["grafana.example.org"]) == ["mail.example.org"]
    moved = [r for r in RECORDS if r.name != "grafana.example.org"] + [Record("grafana.example.org", "A",
                                                                             "198.51.100.20", 60)]
    assert foreign_changes(RECORDS, moved, ["grafana.example.org"]) == []


def test_flags_are_replaced_added_and_removed() -> None:
    args = ["--source=ingress", "--policy=upsert-only", "--domain-filter=example.org"]
    assert set_flags(args, {"policy": ["sync"], "migrate-from-txt-owner": ["prod-k8s"]}) == [
        "--source=ingress", "--domain-filter=example.org", "--policy=sync", "--migrate-from-txt-owner=prod-k8s"]
    assert set_flags(["--migrate-from-txt-owner=x", "--policy=sync"], {"migrate-from-txt-owner": []}) == [
        "--policy=sync"]
    assert Server.parse("127.0.0.1:5353") == Server("127.0.0.1", 5353) and Server.parse("ns1.example.org").port == 53
