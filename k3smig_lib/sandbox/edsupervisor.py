"""The sandbox's stand-in kubelet for the two external-dns Deployments: runs the real binary.

kwok makes the sandbox's pods look Ready but runs nothing. For external-dns the cutover needs the
real controller, so this process watches ``external-dns/external-dns`` on each cluster and keeps one
``external-dns`` process running with the Deployment's arguments while ``spec.replicas`` is above 0:
scaling it to 0 stops it, changing its arguments restarts it — what a kubelet does after a rollout.
The TSIG secret is resolved from the Deployment's ``secretKeyRef`` into the child's environment.

On the source it also plays the source's ingress-nginx for one job: an Ingress of class ``nginx``
with no load balancer address gets the source's address in its status, which external-dns publishes.

Run by :func:`k3smig_lib.sandbox.dnsstand.start`; stopped (with its children) by ``sandbox down``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from k3smig_lib.core.objects import get_path
from k3smig_lib.k8s.client import ClusterRef, Kube

DEPLOYMENT = "/apis/apps/v1/namespaces/external-dns/deployments/external-dns"
_children: dict[str, subprocess.Popen[bytes]] = {}
_running_args: dict[str, list[str]] = {}


def side_kubeconfig(kubeconfig: Path, context: str, out: Path) -> Path:
    """A copy of the sandbox kubeconfig whose current-context is ``context`` (external-dns has no flag)."""
    cfg = yaml.safe_load(kubeconfig.read_text())
    cfg["current-context"] = context
    out.touch(mode=0o600)
    out.write_text(yaml.safe_dump(cfg))
    return out


def _stop(side: str) -> None:
    proc = _children.pop(side, None)
    _running_args.pop(side, None)
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _secret_env(kube: Kube, container: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        ref = get_path(item, "valueFrom.secretKeyRef")
        if ref:
            secret = kube.json("GET", f"/api/v1/namespaces/external-dns/secrets/{ref['name']}", counter="gets")
            env[item["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        elif "value" in item:
            env[item["name"]] = str(item["value"])
    return env


def _reconcile(side: str, kube: Kube, binary: str, kubeconfig: Path, work: Path) -> None:
    resp = kube.request("GET", DEPLOYMENT, counter="gets", accept=(404,))
    if resp.status == 404:
        _stop(side)
        return
    body = resp.body
    replicas = int(get_path(body, "spec.replicas", 1) or 0)
    container = (get_path(body, "spec.template.spec.containers", []) or [{}])[0]
    args = [str(a) for a in container.get("args") or []]
    proc = _children.get(side)
    if replicas == 0:
        _stop(side)
        return
    if proc is not None and proc.poll() is None and _running_args.get(side) == args:
        return
    _stop(side)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), **_secret_env(kube, container)}
    log = open(work / f"external-dns-{side}.log", "ab")  # noqa: SIM115 - the child keeps it open
    log.write(f"--- start {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} args: {' '.join(args)}\n".encode())
    log.flush()
    _children[side] = subprocess.Popen([binary, *args, f"--kubeconfig={kubeconfig}"], stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
    _running_args[side] = args


def _publish_source_lb(kube: Kube, address: str) -> None:
    for ing in kube.json("GET", "/apis/networking.k8s.io/v1/ingresses", counter="lists").get("items") or []:
        if get_path(ing, "status.loadBalancer.ingress"):
            continue
        meta = ing["metadata"]
        path = f"/apis/networking.k8s.io/v1/namespaces/{meta['namespace']}/ingresses/{meta['name']}/status"
        kube.request("PATCH", path, counter="writes", body={"status": {"loadBalancer": {"ingress": [{"ip": address}]}}},
                     content_type="application/merge-patch+json")


def _write_state(work: Path) -> None:
    state = {side: {"pid": proc.pid, "args": _running_args.get(side, [])}
             for side, proc in _children.items() if proc.poll() is None}
    tmp = work / "supervisor.json.tmp"
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    tmp.replace(work / "supervisor.json")


def _terminate(signum: int, frame: object) -> None:
    for side in list(_children):
        _stop(side)
    sys.exit(0)


def main(argv: list[str] | None = None) -> int:
    """Reconcile both clusters' external-dns once a second until SIGTERM."""
    p = argparse.ArgumentParser(prog="edsupervisor")
    p.add_argument("--kubeconfig", type=Path, required=True)
    p.add_argument("--source-context", required=True)
    p.add_argument("--target-context", required=True)
    p.add_argument("--binary", required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--source-lb", required=True)
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    sides = {"source": args.source_context, "target": args.target_context}
    kubes = {side: Kube.of(ClusterRef(str(args.kubeconfig), ctx, side)) for side, ctx in sides.items()}
    configs = {side: side_kubeconfig(args.kubeconfig, ctx, args.work / f"{side}.kubeconfig")
               for side, ctx in sides.items()}
    while True:
        for side, kube in kubes.items():
            try:
                if side == "source":
                    _publish_source_lb(kube, args.source_lb)
                _reconcile(side, kube, args.binary, configs[side], args.work)
            except Exception as e:  # noqa: BLE001 - a stand-in kubelet keeps going, like the real one
                print(f"{side}: {type(e).__name__}: {e}", flush=True)
        _write_state(args.work)
        time.sleep(1.0)


if __name__ == "__main__":
    sys.exit(main())
