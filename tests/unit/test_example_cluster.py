"""The bundled example cluster (examples/prod-cluster) is reproducible and looks like a real export."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import sqlite3
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "prod-cluster"
GENERATOR = ROOT / "examples" / "generate.py"
SQLITE_FILES = {"db.sqlite3", "grafana.db", "pgadmin4.db"}
ARCHIVE_OWNERS = {
    "vaultwarden/vaultwarden-data": 0,
    "monitoring/prometheus-data": 65534,
    "monitoring/grafana-data": 472,
    "monitoring/storage-loki-0": 10001,
    "pgadmin/pgadmin-data": 5050,
}

Obj = dict[str, Any]


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("regenerated") / "prod-cluster"
    done = subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(out)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def objects() -> list[Obj]:
    items: list[Obj] = []
    for path in sorted((EXAMPLE / "manifests").rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        assert doc["apiVersion"] == "v1" and doc["kind"] == "List", path
        items.extend(doc["items"])
    return items


@pytest.fixture(scope="module")
def cluster() -> Obj:
    info: Obj = yaml.safe_load((EXAMPLE / "cluster.yaml").read_text())
    return info


def find(objects: list[Obj], kind: str, namespace: str, name: str) -> Obj:
    hits = [
        o
        for o in objects
        if o["kind"] == kind and o["metadata"].get("namespace", "") == namespace and o["metadata"]["name"] == name
    ]
    assert len(hits) == 1, f"{kind} {namespace}/{name}: {len(hits)} found"
    return hits[0]


def of_kind(objects: list[Obj], kind: str, namespace: str | None = None) -> list[Obj]:
    return [
        o for o in objects if o["kind"] == kind and (namespace is None or o["metadata"].get("namespace") == namespace)
    ]


def decode_helm_release(secret: Obj) -> Obj:
    helm_text = base64.b64decode(secret["data"]["release"])
    release: Obj = json.loads(gzip.decompress(base64.b64decode(helm_text)))
    return release


def members(archive: Path) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    result: dict[str, tuple[tarfile.TarInfo, bytes]] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for info in tar:
            data = tar.extractfile(info).read() if info.isfile() else b""  # type: ignore[union-attr]
            result[info.name] = (info, data)
    return result


def archive(namespace: str, claim: str) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    return members(EXAMPLE / "volumes" / namespace / f"{claim}.tar.gz")


def open_sqlite(data: bytes, tmp_path: Path, name: str) -> sqlite3.Connection:
    path = tmp_path / name
    path.write_bytes(data)
    return sqlite3.connect(path)


def table_dump(data: bytes, tmp_path: Path, name: str) -> list[str]:
    con = open_sqlite(data, tmp_path, name)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def sqlite_writer_version(data: bytes) -> int:
    """SQLITE_VERSION_NUMBER of the library that last wrote the file (header offset 96)."""
    return int.from_bytes(data[96:100], "big")


def current_sqlite_version() -> int:
    major, minor, patch = sqlite3.sqlite_version_info
    return major * 1_000_000 + minor * 1_000 + patch


def _normalized_list(text: str) -> Obj:
    doc: Obj = yaml.safe_load(text)
    for item in doc["items"]:
        if item["kind"] == "Secret" and item.get("type") == "helm.sh/release.v1":
            item["data"]["release"] = decode_helm_release(item)
    return doc


def walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from walk_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk_strings(v)
    elif isinstance(value, str):
        yield value


# ---------------------------------------------------------------------------------------------- reproducibility


def test_regenerating_writes_the_same_set_of_files(regenerated: Path) -> None:
    committed = sorted(p.relative_to(EXAMPLE) for p in EXAMPLE.rglob("*") if p.is_file())
    fresh = sorted(p.relative_to(regenerated) for p in regenerated.rglob("*") if p.is_file())
    assert fresh == committed


def test_regenerating_reproduces_every_committed_yaml_file_byte_for_byte(regenerated: Path) -> None:
    files = sorted(EXAMPLE.glob("manifests/**/*.yaml")) + [EXAMPLE / "cluster.yaml"]
    assert len(files) > 100
    differing = []
    for path in files:
        committed, fresh = path.read_text(), (regenerated / path.relative_to(EXAMPLE)).read_text()
        if committed == fresh:
            continue
        # Helm payloads are gzip streams: another zlib (zlib-ng) compresses differently, same content.
        if _normalized_list(committed) != _normalized_list(fresh) or "helm.sh/release.v1" not in committed:
            differing.append(str(path.relative_to(EXAMPLE)))
    assert differing == []


@pytest.mark.parametrize("volume", sorted(ARCHIVE_OWNERS))
def test_regenerating_reproduces_each_volume_archive(regenerated: Path, volume: str, tmp_path: Path) -> None:
    namespace, claim = volume.split("/")
    committed = archive(namespace, claim)
    fresh = members(regenerated / "volumes" / namespace / f"{claim}.tar.gz")
    assert list(fresh) == list(committed)
    for name, (info, data) in committed.items():
        new_info, new_data = fresh[name]
        meta = ("type", "mode", "uid", "gid", "uname", "gname", "mtime", "linkname")
        assert [getattr(new_info, a) for a in meta] == [getattr(info, a) for a in meta], name
        if PurePosixPath(name).name not in SQLITE_FILES:
            assert hashlib.sha256(new_data).hexdigest() == hashlib.sha256(data).hexdigest(), name
        elif sqlite_writer_version(data) == current_sqlite_version():
            assert new_data == data, f"{name}: same SQLite version, bytes must match"
        else:
            base = PurePosixPath(name).name
            assert table_dump(new_data, tmp_path, "new-" + base) == table_dump(data, tmp_path, "old-" + base), name


def test_the_whole_example_stays_under_two_megabytes() -> None:
    assert sum(p.stat().st_size for p in EXAMPLE.rglob("*") if p.is_file()) < 2 * 1024 * 1024


# ---------------------------------------------------------------------------------------------- real-export fields


def test_cluster_yaml_describes_a_kapsule_cluster_whose_identity_is_the_kube_system_uid(
    cluster: Obj, objects: list[Obj]
) -> None:
    assert cluster["name"] == "prod-k8s"
    assert cluster["kubernetesVersion"] == "v1.31.4"
    assert cluster["distribution"] == "kapsule"
    assert cluster["exportedAt"] == "2025-01-20T10:00:00Z"
    assert cluster["kubeSystemUID"] == find(objects, "Namespace", "", "kube-system")["metadata"]["uid"]
    assert cluster["nodes"] == sorted(o["metadata"]["name"] for o in of_kind(objects, "Node"))
    assert len(cluster["nodes"]) == 2


def test_every_object_carries_the_server_set_metadata_of_a_real_export(objects: list[Obj]) -> None:
    uids = set()
    for obj in objects:
        meta = obj["metadata"]
        where = f"{obj['kind']} {meta.get('namespace', '')}/{meta['name']}"
        assert meta["uid"] not in uids, where
        uids.add(meta["uid"])
        assert meta["resourceVersion"].isdigit(), where
        assert meta["creationTimestamp"].endswith("Z"), where
        assert meta["managedFields"], where
        for entry in meta["managedFields"]:
            assert {"apiVersion", "fieldsType", "fieldsV1", "manager", "operation", "time"} <= set(entry), where
            assert entry["fieldsType"] == "FieldsV1" and entry["operation"] == "Update", where
    assert len(objects) > 200


def test_resource_versions_grow_with_the_time_of_the_last_write(objects: list[Obj]) -> None:
    def last_write(o: Obj) -> str:
        return max(str(m["time"]) for m in o["metadata"]["managedFields"])

    ordered = sorted(objects, key=lambda o: int(o["metadata"]["resourceVersion"]))
    times = [last_write(o) for o in ordered]
    assert times == sorted(times)


def test_workloads_have_generation_status_and_controller_bookkeeping(objects: list[Obj]) -> None:
    for dep in of_kind(objects, "Deployment"):
        assert dep["metadata"]["generation"] >= 1
        assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"].isdigit()
        assert dep["status"]["observedGeneration"] == dep["metadata"]["generation"]
        assert dep["spec"]["template"]["metadata"]["creationTimestamp"] is None
        assert dep["spec"]["revisionHistoryLimit"] == 10 and dep["spec"]["progressDeadlineSeconds"] == 600
        for c in dep["spec"]["template"]["spec"]["containers"]:
            assert c["terminationMessagePath"] == "/dev/termination-log"


def test_kubectl_applied_objects_carry_their_applied_manifest_as_json(objects: list[Obj]) -> None:
    applied = [
        o for o in objects if "kubectl.kubernetes.io/last-applied-configuration" in o["metadata"].get("annotations", {})
    ]
    assert len(applied) > 40
    for obj in applied:
        text = obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        assert text.endswith("\n")
        manifest = json.loads(text)
        assert (manifest["kind"], manifest["metadata"]["name"]) == (obj["kind"], obj["metadata"]["name"])
        assert "status" not in manifest and "uid" not in manifest["metadata"]
        assert any(m["manager"] == "kubectl-client-side-apply" for m in obj["metadata"]["managedFields"])


def test_services_have_allocated_cluster_ips_in_the_kapsule_service_range(objects: list[Obj]) -> None:
    for svc in of_kind(objects, "Service"):
        spec = svc["spec"]
        if spec["clusterIP"] == "None":
            assert spec["clusterIPs"] == ["None"]
            continue
        assert spec["clusterIP"].startswith("10.32."), svc["metadata"]["name"]
        assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert find(objects, "Service", "monitoring", "loki-headless")["spec"]["clusterIP"] == "None"


# ---------------------------------------------------------------------------------------------- owned objects


def test_every_owner_reference_points_at_an_exported_object_with_that_uid(objects: list[Obj]) -> None:
    by_uid = {o["metadata"]["uid"]: o for o in objects}
    owned = [o for o in objects if o["metadata"].get("ownerReferences")]
    assert len(owned) > 40
    for obj in owned:
        for ref in obj["metadata"]["ownerReferences"]:
            owner = by_uid[ref["uid"]]
            assert (owner["kind"], owner["metadata"]["name"]) == (ref["kind"], ref["name"])


def test_deployments_own_replicasets_that_own_running_pods_with_the_template_hash(objects: list[Obj]) -> None:
    dep = find(objects, "Deployment", "vaultwarden", "vaultwarden")
    replicasets = [
        rs
        for rs in of_kind(objects, "ReplicaSet", "vaultwarden")
        if rs["metadata"]["ownerReferences"][0]["uid"] == dep["metadata"]["uid"]
    ]
    assert sorted(rs["spec"]["replicas"] for rs in replicasets) == [0, 1]  # upgraded: old RS kept at 0
    current = next(rs for rs in replicasets if rs["spec"]["replicas"] == 1)
    tpl_hash = current["metadata"]["labels"]["pod-template-hash"]
    assert current["metadata"]["name"] == f"vaultwarden-{tpl_hash}"
    pods = [
        p
        for p in of_kind(objects, "Pod", "vaultwarden")
        if p["metadata"]["ownerReferences"][0]["uid"] == current["metadata"]["uid"]
    ]
    assert len(pods) == 1
    pod = pods[0]
    assert pod["metadata"]["labels"]["pod-template-hash"] == tpl_hash
    assert pod["spec"]["nodeName"] in [n["metadata"]["name"] for n in of_kind(objects, "Node")]
    assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"].startswith("100.64.")
    assert pod["spec"]["priority"] == 1_000_000 and pod["spec"]["priorityClassName"] == "prod-critical"
    projected = [v for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
    assert len(projected) == 1 and "projected" in projected[0]


def test_every_namespace_has_a_default_service_account_and_kube_root_ca(objects: list[Obj]) -> None:
    namespaces = [n["metadata"]["name"] for n in of_kind(objects, "Namespace")]
    assert {
        "vaultwarden",
        "monitoring",
        "pgadmin",
        "gitlab-runner",
        "kube-system",
        "ingress-nginx",
        "cert-manager",
        "default",
    } <= set(namespaces)
    for ns in namespaces:
        find(objects, "ServiceAccount", ns, "default")
        root_ca = find(objects, "ConfigMap", ns, "kube-root-ca.crt")
        assert root_ca["data"]["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
        assert find(objects, "Namespace", "", ns)["spec"]["finalizers"] == ["kubernetes"]


def test_every_selector_service_has_endpoints_and_a_slice_listing_its_ready_pods(objects: list[Obj]) -> None:
    for svc in of_kind(objects, "Service"):
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        selector = svc["spec"].get("selector")
        if not selector:
            continue
        pods = [
            p
            for p in of_kind(objects, "Pod", ns)
            if p["status"]["phase"] == "Running"
            and all(p["metadata"]["labels"].get(k) == v for k, v in selector.items())
        ]
        assert pods, f"service {ns}/{name} selects no pod"
        ips = sorted(p["status"]["podIP"] for p in pods)
        endpoints = find(objects, "Endpoints", ns, name)
        assert sorted(a["ip"] for a in endpoints["subsets"][0]["addresses"]) == ips
        slices = [
            s
            for s in of_kind(objects, "EndpointSlice", ns)
            if s["metadata"]["labels"].get("kubernetes.io/service-name") == name
        ]
        assert len(slices) == 1
        assert sorted(e["addresses"][0] for e in slices[0]["endpoints"]) == ips
        assert slices[0]["metadata"]["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]


def test_the_selectorless_external_database_service_keeps_hand_written_endpoints(objects: list[Obj]) -> None:
    svc = find(objects, "Service", "pgadmin", "postgres-external")
    assert "selector" not in svc["spec"]
    endpoints = find(objects, "Endpoints", "pgadmin", "postgres-external")
    assert endpoints["subsets"][0]["addresses"] == [{"ip": "172.16.8.10"}]
    assert "kubectl.kubernetes.io/last-applied-configuration" in endpoints["metadata"]["annotations"]
    mirrored = [
        s
        for s in of_kind(objects, "EndpointSlice", "pgadmin")
        if s["metadata"]["labels"].get("kubernetes.io/service-name") == "postgres-external"
    ]
    assert mirrored[0]["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == (
        "endpointslicemirroring-controller.k8s.io"
    )


# ---------------------------------------------------------------------------------------------- listed features


def test_pgadmin_claim_is_read_write_many_on_the_retain_class_and_bound_to_a_csi_volume(objects: list[Obj]) -> None:
    pvc = find(objects, "PersistentVolumeClaim", "pgadmin", "pgadmin-data")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["storageClassName"] == "scw-bssd-retain"
    assert pvc["status"]["phase"] == "Bound"
    pv = find(objects, "PersistentVolume", "", pvc["spec"]["volumeName"])
    assert pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["csi"]["driver"] == "csi.scaleway.com"
    assert pv["spec"]["csi"]["volumeHandle"].startswith("fr-par-1/")


def test_every_claim_is_bound_to_a_provisioned_volume_and_has_an_archive(objects: list[Obj]) -> None:
    claims = of_kind(objects, "PersistentVolumeClaim")
    assert {f"{c['metadata']['namespace']}/{c['metadata']['name']}" for c in claims} == set(ARCHIVE_OWNERS)
    for claim in claims:
        pv = find(objects, "PersistentVolume", "", claim["spec"]["volumeName"])
        assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "csi.scaleway.com"
        assert claim["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    classes = {c["metadata"]["name"]: c for c in of_kind(objects, "StorageClass")}
    assert classes["scw-bssd"]["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert {c["provisioner"] for c in classes.values()} == {"csi.scaleway.com"}


def test_grafana_load_balancer_has_scaleway_annotations_an_address_and_sits_behind_the_ingress(
    objects: list[Obj],
) -> None:
    svc = find(objects, "Service", "monitoring", "grafana-lb")
    assert svc["spec"]["type"] == "LoadBalancer"
    annotations = svc["metadata"]["annotations"]
    assert any(k.startswith("service.beta.kubernetes.io/scw-loadbalancer-") for k in annotations)
    assert 30000 <= svc["spec"]["ports"][0]["nodePort"] <= 32767
    assert svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    ingress = find(objects, "Ingress", "monitoring", "grafana")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "grafana-lb"
    assert ingress["spec"]["tls"][0]["secretName"] == "grafana-tls"


def test_vaultwarden_ingress_uses_the_deprecated_class_annotation_and_the_cluster_issuer(objects: list[Obj]) -> None:
    ingress = find(objects, "Ingress", "vaultwarden", "vaultwarden")
    assert ingress["metadata"]["annotations"]["kubernetes.io/ingress.class"] == "nginx"
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    assert "ingressClassName" not in ingress["spec"]
    assert ingress["spec"]["rules"][0]["host"] == "vault.example.org"
    certificate = find(objects, "Certificate", "vaultwarden", "vaultwarden-tls")
    assert certificate["metadata"]["ownerReferences"][0]["uid"] == ingress["metadata"]["uid"]


@pytest.mark.parametrize(
    ("namespace", "name", "host"),
    [("vaultwarden", "vaultwarden-tls", "vault.example.org"), ("monitoring", "grafana-tls", "grafana.example.org")],
)
def test_tls_secrets_hold_a_matching_certificate_and_key_with_cert_manager_annotations(
    objects: list[Obj], namespace: str, name: str, host: str
) -> None:
    secret = find(objects, "Secret", namespace, name)
    assert secret["type"] == "kubernetes.io/tls"
    annotations = secret["metadata"]["annotations"]
    assert annotations["cert-manager.io/certificate-name"] == name
    assert annotations["cert-manager.io/issuer-name"] == "letsencrypt-prod"
    assert annotations["cert-manager.io/issuer-kind"] == "ClusterIssuer"
    certificate = find(objects, "Certificate", namespace, name)
    assert secret["metadata"]["ownerReferences"][0]["uid"] == certificate["metadata"]["uid"]
    chain = x509.load_pem_x509_certificates(base64.b64decode(secret["data"]["tls.crt"]))
    key = serialization.load_pem_private_key(base64.b64decode(secret["data"]["tls.key"]), password=None)
    assert len(chain) == 2
    sans = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [host]
    assert chain[0].public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    assert certificate["status"]["notAfter"] == chain[0].not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_cert_manager_crds_cluster_issuer_and_acme_account_key_are_exported(objects: list[Obj]) -> None:
    crds = {c["metadata"]["name"] for c in of_kind(objects, "CustomResourceDefinition")}
    assert {
        "certificates.cert-manager.io",
        "clusterissuers.cert-manager.io",
        "certificaterequests.cert-manager.io",
        "issuers.cert-manager.io",
        "orders.acme.cert-manager.io",
        "challenges.acme.cert-manager.io",
    } == crds
    issuer = find(objects, "ClusterIssuer", "", "letsencrypt-prod")
    key_ref = issuer["spec"]["acme"]["privateKeySecretRef"]["name"]
    account_key = find(objects, "Secret", "cert-manager", key_ref)
    assert base64.b64decode(account_key["data"]["tls.key"]).startswith(b"-----BEGIN RSA PRIVATE KEY-----")


def test_runner_is_pinned_to_an_exported_node_and_pulls_with_a_dockerconfigjson_secret(
    objects: list[Obj], cluster: Obj
) -> None:
    dep = find(objects, "Deployment", "gitlab-runner", "gitlab-runner")
    spec = dep["spec"]["template"]["spec"]
    assert spec["nodeSelector"]["kubernetes.io/hostname"] in cluster["nodes"]
    pull = find(objects, "Secret", "gitlab-runner", spec["imagePullSecrets"][0]["name"])
    assert pull["type"] == "kubernetes.io/dockerconfigjson"
    auths = json.loads(base64.b64decode(pull["data"][".dockerconfigjson"]))["auths"]
    assert list(auths) == ["registry.gitlab.com"]
    token = base64.b64decode(
        find(objects, "Secret", "gitlab-runner", "gitlab-runner")["data"]["runner-registration-token"]
    ).decode()
    assert token.startswith("glrt-") and len(token) >= 20
    config = find(objects, "ConfigMap", "gitlab-runner", "gitlab-runner-config")["data"]["config.toml"]
    assert 'executor = "kubernetes"' in config


def test_the_standalone_job_completed_and_its_pod_succeeded(objects: list[Obj]) -> None:
    job = find(objects, "Job", "gitlab-runner", "runner-cache-prune-manual")
    assert "ownerReferences" not in job["metadata"]
    assert job["status"]["succeeded"] == 1 and job["status"]["completionTime"]
    job_uid = job["metadata"]["uid"]
    assert job["spec"]["selector"]["matchLabels"] == {"batch.kubernetes.io/controller-uid": job_uid}
    pods = [
        p for p in of_kind(objects, "Pod", "gitlab-runner") if p["metadata"]["ownerReferences"][0]["uid"] == job_uid
    ]
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"]
    assert pods[0]["metadata"]["labels"]["batch.kubernetes.io/job-name"] == job["metadata"]["name"]


def test_the_cronjob_owns_the_job_of_its_last_run(objects: list[Obj]) -> None:
    cron = find(objects, "CronJob", "gitlab-runner", "runner-cache-cleanup")
    owned = [
        j
        for j in of_kind(objects, "Job", "gitlab-runner")
        if j["metadata"].get("ownerReferences", [{}])[0].get("uid") == cron["metadata"]["uid"]
    ]
    assert len(owned) == 1
    scheduled = owned[0]["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
    assert scheduled == cron["status"]["lastScheduleTime"]
    assert owned[0]["status"]["completionTime"] == cron["status"]["lastSuccessfulTime"]


@pytest.mark.parametrize(
    ("namespace", "name", "account"),
    [("gitlab-runner", "gitlab-runner-token", "gitlab-runner"), ("monitoring", "prometheus-token", "prometheus")],
)
def test_legacy_token_secrets_carry_a_jwt_bound_to_their_service_account(
    objects: list[Obj], namespace: str, name: str, account: str
) -> None:
    secret = find(objects, "Secret", namespace, name)
    assert secret["type"] == "kubernetes.io/service-account-token"
    sa = find(objects, "ServiceAccount", namespace, account)
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"] == sa["metadata"]["uid"]
    token = base64.b64decode(secret["data"]["token"]).decode()
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == f"system:serviceaccount:{namespace}:{account}"


def test_loki_is_a_helm_release_with_three_revisions_and_a_claim_template(objects: list[Obj]) -> None:
    secrets = sorted(
        (s for s in of_kind(objects, "Secret", "monitoring") if s["type"] == "helm.sh/release.v1"),
        key=lambda s: s["metadata"]["name"],
    )
    assert [s["metadata"]["name"] for s in secrets] == [f"sh.helm.release.v1.loki.v{n}" for n in (1, 2, 3)]
    assert [s["metadata"]["labels"]["status"] for s in secrets] == ["superseded", "superseded", "deployed"]
    release = decode_helm_release(secrets[-1])
    assert (release["name"], release["version"], release["namespace"]) == ("loki", 3, "monitoring")
    assert release["info"]["status"] == "deployed"
    rendered = list(yaml.safe_load_all(release["manifest"]))
    assert "StatefulSet" in [d["kind"] for d in rendered]
    sts = find(objects, "StatefulSet", "monitoring", "loki")
    assert sts["metadata"]["annotations"]["meta.helm.sh/release-name"] == "loki"
    assert sts["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "storage"
    assert sts["spec"]["serviceName"] == "loki-headless"
    claim = find(objects, "PersistentVolumeClaim", "monitoring", "storage-loki-0")
    assert claim["metadata"]["labels"]["app.kubernetes.io/instance"] == "loki"


def test_security_contexts_match_the_volume_owners(objects: list[Obj]) -> None:
    def pod_security(ns: str, name: str) -> Obj:
        sc: Obj = find(objects, "Deployment", ns, name)["spec"]["template"]["spec"]["securityContext"]
        return sc

    assert "runAsUser" not in pod_security("vaultwarden", "vaultwarden")
    assert pod_security("monitoring", "grafana")["runAsUser"] == 472
    assert pod_security("monitoring", "grafana")["fsGroup"] == 472
    assert pod_security("monitoring", "prometheus")["runAsUser"] == 65534
    assert pod_security("pgadmin", "pgadmin")["fsGroup"] == 5050


def test_secret_values_are_long_and_stay_inside_their_secrets(objects: list[Obj]) -> None:
    values = []
    for secret in of_kind(objects, "Secret"):
        if secret["type"] in ("Opaque", "kubernetes.io/dockerconfigjson"):
            for key, value in secret["data"].items():
                if key != "admin-user":
                    values.append(base64.b64decode(value).decode())
    assert len(values) >= 6 and all(len(v) >= 16 for v in values)
    others = [s for o in objects if o["kind"] != "Secret" for s in walk_strings(o)]
    leaked = [v for v in values for s in others if v in s]
    assert leaked == []


def test_platform_objects_that_a_migration_must_leave_behind_are_present(objects: list[Obj]) -> None:
    find(objects, "Deployment", "kube-system", "coredns")
    find(objects, "Deployment", "ingress-nginx", "ingress-nginx-controller")
    find(objects, "Deployment", "cert-manager", "cert-manager")
    find(objects, "APIService", "", "v1beta1.metrics.k8s.io")
    find(objects, "IngressClass", "", "nginx")
    find(objects, "PriorityClass", "", "prod-critical")
    find(objects, "NetworkPolicy", "vaultwarden", "vaultwarden-from-ingress")
    find(objects, "PodDisruptionBudget", "monitoring", "grafana")
    find(objects, "HorizontalPodAutoscaler", "pgadmin", "pgadmin")
    find(objects, "ResourceQuota", "gitlab-runner", "ci-quota")
    find(objects, "LimitRange", "gitlab-runner", "ci-defaults")
    assert {
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Lease",
        "Event",
        "ControllerRevision",
        "DaemonSet",
    } <= {o["kind"] for o in objects}
    assert len(of_kind(objects, "Lease", "kube-node-lease")) == 2


def test_prometheus_config_is_valid_yaml_and_ships_the_rule_file_it_names(objects: list[Obj]) -> None:
    data = find(objects, "ConfigMap", "monitoring", "prometheus-config")["data"]
    config = yaml.safe_load(data["prometheus.yml"])
    assert config["rule_files"] == ["alerts.yml"]
    rules = yaml.safe_load(data["alerts.yml"])
    assert rules["groups"][0]["rules"]
    assert {j["job_name"] for j in config["scrape_configs"]} >= {"prometheus", "kubernetes-pods"}
    mounted = find(objects, "Deployment", "monitoring", "prometheus")["spec"]["template"]["spec"]["containers"][0]
    assert "--config.file=/etc/prometheus/prometheus.yml" in mounted["args"]


# ---------------------------------------------------------------------------------------------- volume archives


@pytest.mark.parametrize(("volume", "owner"), sorted(ARCHIVE_OWNERS.items()))
def test_archive_members_are_relative_and_owned_by_the_application_user(volume: str, owner: int) -> None:
    namespace, claim = volume.split("/")
    entries = archive(namespace, claim)
    assert next(iter(entries)) in (".", "./")
    for name, (info, _) in entries.items():
        assert name == "." or name.startswith("./"), name
        assert ".." not in PurePosixPath(name).parts[:-1] or info.issym(), name
        assert (info.uid, info.gid) == (owner, owner), name
        assert info.uname == "" and info.gname == ""
        assert info.isdir() or info.isfile() or info.issym(), name


def test_archives_have_private_modes_an_empty_dir_a_zero_byte_file_and_a_relative_symlink() -> None:
    pgadmin = archive("pgadmin", "pgadmin-data")
    assert pgadmin["./sessions"][0].mode == 0o700
    assert pgadmin["./pgadmin4.db"][0].mode == 0o600
    link = pgadmin["./storage/admin_example.org/backups/latest.sql"][0]
    assert link.issym() and link.linkname == "../exports/prod-2024-12-31.sql"
    target = PurePosixPath("storage/admin_example.org/backups") / link.linkname
    resolved = "./" + "/".join(p for p in _normalize(target.parts))
    assert pgadmin[resolved][0].isfile()
    vaultwarden = archive("vaultwarden", "vaultwarden-data")
    assert vaultwarden["./rsa_key.pem"][0].mode == 0o600
    assert vaultwarden["./icon_cache"][0].isdir()
    assert not any(n.startswith("./icon_cache/") for n in vaultwarden)
    prometheus = archive("monitoring", "prometheus-data")
    assert prometheus["./lock"][0].size == 0


def _normalize(parts: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for part in parts:
        if part == "..":
            out.pop()
        elif part != ".":
            out.append(part)
    return out


def test_prometheus_volume_has_a_wal_head_chunks_and_blocks_with_meta_json() -> None:
    entries = archive("monitoring", "prometheus-data")
    names = set(entries)
    assert any(n.startswith("./wal/0") for n in names)
    assert any(n.startswith("./chunks_head/") for n in names)
    metas = [n for n in names if n.endswith("/meta.json")]
    assert len(metas) == 2
    for meta_name in metas:
        block = meta_name.rsplit("/", 1)[0]
        meta = json.loads(entries[meta_name][1])
        assert meta["ulid"] == block[2:] and meta["version"] == 1
        assert {f"{block}/index", f"{block}/chunks/000001", f"{block}/tombstones"} <= names


# ---------------------------------------------------------------------------------------------- SQLite files


@pytest.mark.parametrize(
    ("volume", "member"),
    [
        ("vaultwarden/vaultwarden-data", "./db.sqlite3"),
        ("monitoring/grafana-data", "./grafana.db"),
        ("pgadmin/pgadmin-data", "./pgadmin4.db"),
    ],
)
def test_sqlite_files_pass_integrity_check(volume: str, member: str, tmp_path: Path) -> None:
    namespace, claim = volume.split("/")
    data = archive(namespace, claim)[member][1]
    assert data.startswith(b"SQLite format 3\x00")
    con = open_sqlite(data, tmp_path, PurePosixPath(member).name)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    finally:
        con.close()


def test_vaultwarden_database_references_attachments_that_exist_in_the_volume(tmp_path: Path) -> None:
    entries = archive("vaultwarden", "vaultwarden-data")
    con = open_sqlite(entries["./db.sqlite3"][1], tmp_path, "db.sqlite3")
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"users", "ciphers", "attachments", "folders", "organizations", "__diesel_schema_migrations"} <= tables
        assert con.execute("PRAGMA user_version").fetchone()[0] > 0
        rows = sum(con.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables)
        assert rows >= 36
        attachments = con.execute("SELECT cipher_uuid, id, file_size FROM attachments").fetchall()
        assert attachments
        for cipher, attachment_id, size in attachments:
            info, _ = entries[f"./attachments/{cipher}/{attachment_id}"]
            assert info.size == size
            assert con.execute("SELECT COUNT(*) FROM ciphers WHERE uuid = ?", (cipher,)).fetchone()[0] == 1
    finally:
        con.close()


def test_grafana_database_has_four_dashboards_in_one_folder(tmp_path: Path) -> None:
    con = open_sqlite(archive("monitoring", "grafana-data")["./grafana.db"][1], tmp_path, "grafana.db")
    try:
        columns = {r[1] for r in con.execute("PRAGMA table_info(dashboard)")}
        assert {
            "id",
            "version",
            "slug",
            "title",
            "data",
            "org_id",
            "created",
            "updated",
            "uid",
            "folder_uid",
            "is_folder",
        } <= columns
        folders = con.execute("SELECT uid FROM dashboard WHERE is_folder = 1").fetchall()
        dashboards = con.execute("SELECT uid, version, data, folder_uid FROM dashboard WHERE is_folder = 0").fetchall()
        assert len(folders) == 1 and len(dashboards) == 4
        for uid, version, data, folder_uid in dashboards:
            model = json.loads(data)
            assert (model["uid"], model["version"]) == (uid, version)
            assert folder_uid == folders[0][0]
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------- kubectl shape


def test_manifest_files_read_like_kubectl_output_without_yaml_anchors() -> None:
    for path in sorted((EXAMPLE / "manifests").rglob("*.yaml")):
        text = path.read_text()
        assert text.startswith("apiVersion: v1\nitems:\n"), path
        assert text.endswith('kind: List\nmetadata:\n  resourceVersion: ""\n'), path
        assert "&id0" not in text and "*id0" not in text, path


def test_every_core_object_validates_against_the_kubernetes_1_31_schema(objects: list[Obj]) -> None:
    checked = 0
    for obj in objects:
        if obj["apiVersion"].startswith("cert-manager.io/"):
            continue  # custom resources: their schema is the CRD in the export itself
        kubernetes_validate.validate(obj, "1.31.0", strict=True)
        checked += 1
    assert checked > 200
