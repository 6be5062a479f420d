#!/usr/bin/env python3
"""Generate the bundled example source cluster ``examples/prod-cluster/`` (a snapshot folder).

The snapshot is what an export of a small Scaleway Kapsule cluster ("prod-k8s", Kubernetes v1.31.4)
looks like: ``cluster.yaml``, one ``kubectl get <kind> -o yaml`` List per namespace and kind under
``manifests/``, and one tar.gz per PersistentVolumeClaim under ``volumes/``. Every value a server
would have chosen is derived from names, so two runs write the same bytes.

Usage: ``python examples/generate.py [--out DIR]``
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gen import (  # noqa: E402  (the helper package sits next to this script)
    addon_certmanager,
    addon_nginx,
    app_grafana,
    app_loki,
    app_monitoring,
    app_pgadmin,
    app_runner,
    app_vaultwarden,
    nodes,
    platform,
    vol_grafana,
    vol_pgadmin,
    vol_tsdb,
    vol_vaultwarden,
)
from _gen.common import CLUSTER_NAME, DISTRIBUTION, EXPORTED_AT, K8S_VERSION, Obj, uid  # noqa: E402
from _gen.server import Cluster  # noqa: E402
from _gen.tarball import Tree, write_tar_gz  # noqa: E402
from _gen.yamlout import dump, kube_list, write_text  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "prod-cluster"

#: Kinds without a namespace; their Lists go to ``manifests/_cluster/``.
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "StorageClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PriorityClass",
        "IngressClass",
        "APIService",
        "ClusterIssuer",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    }
)

#: Volume archives, one per PersistentVolumeClaim of the export.
VOLUMES: dict[tuple[str, str], Callable[[], Tree]] = {
    ("vaultwarden", "vaultwarden-data"): vol_vaultwarden.tree,
    ("monitoring", "prometheus-data"): vol_tsdb.prometheus_tree,
    ("monitoring", "grafana-data"): vol_grafana.tree,
    ("monitoring", "storage-loki-0"): vol_tsdb.loki_tree,
    ("pgadmin", "pgadmin-data"): vol_pgadmin.tree,
}


def build_objects() -> list[Obj]:
    """Every object of the example cluster, with resourceVersions assigned."""
    c = Cluster()
    platform.build(c)
    addon_nginx.build(c)
    addon_certmanager.build(c)
    app_vaultwarden.build(c)
    app_monitoring.build(c)
    app_grafana.build(c)
    app_loki.build(c)
    app_pgadmin.build(c)
    app_runner.build(c)
    nodes.build_nodes(c)
    return c.finalize()


def _group(objects: list[Obj]) -> dict[tuple[str, str], list[Obj]]:
    groups: dict[tuple[str, str], list[Obj]] = defaultdict(list)
    for obj in objects:
        scope = "_cluster" if obj["kind"] in CLUSTER_SCOPED else obj["metadata"]["namespace"]
        groups[(scope, obj["kind"])].append(obj)
    return groups


def cluster_info(objects: list[Obj]) -> Obj:
    """The content of ``cluster.yaml``."""
    return {
        "name": CLUSTER_NAME,
        "kubernetesVersion": K8S_VERSION,
        "distribution": DISTRIBUTION,
        "kubeSystemUID": uid("Namespace", "", "kube-system"),
        "exportedAt": EXPORTED_AT,
        "nodes": sorted(o["metadata"]["name"] for o in objects if o["kind"] == "Node"),
    }


def write_snapshot(out: Path) -> list[Path]:
    """Write the whole snapshot folder to ``out`` (replacing an earlier one) and return the files written."""
    for stale in ("manifests", "volumes"):
        if (out / stale).is_dir():
            shutil.rmtree(out / stale)
    objects = build_objects()
    written = [out / "cluster.yaml"]
    write_text(written[0], dump(cluster_info(objects)))
    for (scope, kind), items in sorted(_group(objects).items()):
        path = out / "manifests" / scope / f"{kind}.yaml"
        write_text(path, dump(kube_list(sorted(items, key=lambda o: o["metadata"]["name"]))))
        written.append(path)
    claims = {
        (o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects if o["kind"] == "PersistentVolumeClaim"
    }
    if claims != set(VOLUMES):
        raise SystemExit(f"claims and volume archives differ: {sorted(claims ^ set(VOLUMES))}")
    for (namespace, claim), make_tree in sorted(VOLUMES.items()):
        path = out / "volumes" / namespace / f"{claim}.tar.gz"
        write_tar_gz(make_tree(), path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="snapshot folder to (re)write")
    args = parser.parse_args(argv)
    written = write_snapshot(args.out)
    size = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} files ({size / 1024:.0f} KiB) to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
