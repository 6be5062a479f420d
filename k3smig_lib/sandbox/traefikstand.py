"""The sandbox's ingress data plane: a real Traefik per cluster, with its Kubernetes Ingress NGINX provider.

K3s ships Traefik; since ingress-nginx was retired, the migrated ``nginx`` Ingresses are served by
Traefik's ``kubernetesIngressNGINX`` provider. Here each sandbox cluster gets one Traefik process on
127.0.0.1 reading that cluster's API server (the sandbox's admin token, from a 0600 file): its API
(``/api/http/routers``, ``/api/http/middlewares``) shows the routers the migrated Ingresses produce,
and its TLS entry point serves the certificates of the TLS Secrets they name — the listener the
cutover's HTTPS probes connect to.

The sandbox has no pod network: its pods' addresses (10.x, from kwok) exist nowhere, and no packet may
leave 127.0.0.1. So both entry points carry one middleware, from Traefik's file provider, that answers
every request with 403 before any backend is dialled (an ``ipAllowList`` no client matches). The
probes then compare the served certificate and an identical answer on both sides, not application
pages, and the report says so.
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from k3smig_lib.errors import ToolMissingError
from k3smig_lib.sandbox.procs import free_port, log_tail, port_is_listening, start_process, wait_until


@dataclass(frozen=True)
class TraefikStand:
    """One Traefik: its entry points on 127.0.0.1."""

    side: str
    web: int
    websecure: int
    api: int

    def api_get(self, path: str) -> Any:
        """JSON of ``http://127.0.0.1:<api><path>`` (``/api/http/routers``…)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.api}{path}", timeout=5) as resp:
            return json.loads(resp.read())

    def to_json(self) -> dict[str, Any]:
        """Plain dict for the sandbox state."""
        return {"side": self.side, "web": self.web, "websecure": self.websecure, "api": self.api}


#: The stand-in for a data plane: no request ever reaches a backend address (see the module docstring).
NO_BACKEND = "sandbox-no-backend"
DYNAMIC = f"""http:
  middlewares:
    {NO_BACKEND}:
      ipAllowList:
        sourceRange: ["192.0.2.1/32"]
"""


def argv(binary: Path, api_url: str, token_file: Path, ca_file: Path, stand: TraefikStand,
         dynamic: Path) -> list[str]:
    """Traefik's static configuration as flags: entry points, the API, the NGINX and file providers."""
    provider = "--providers.kubernetesIngressNGINX"
    guard = f"{NO_BACKEND}@file"
    return [str(binary), f"--entryPoints.web.address=127.0.0.1:{stand.web}",
            f"--entryPoints.web.http.middlewares={guard}", f"--entryPoints.websecure.http.middlewares={guard}",
            f"--providers.file.filename={dynamic}",
            f"--entryPoints.websecure.address=127.0.0.1:{stand.websecure}", "--entryPoints.websecure.http.tls=true",
            f"--entryPoints.traefik.address=127.0.0.1:{stand.api}", "--api.insecure=true", "--ping=true",
            f"{provider}.endpoint={api_url}", f"{provider}.token={token_file}",
            f"{provider}.certAuthFilePath={ca_file}", f"{provider}.ingressClass=nginx",
            f"{provider}.throttleDuration=1s", "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
            "--log.level=INFO"]


def _wait_listening(stand: TraefikStand, log: str, what: str) -> None:
    wait_until(lambda: port_is_listening(stand.api) and port_is_listening(stand.websecure), 60, what,
               lambda: log_tail(log))


def start(state_dir: Path, state: dict[str, Any], binary: Path) -> dict[str, TraefikStand]:
    """Start one Traefik per sandbox cluster; their records go to ``state`` (``down`` stops them).

    Raises:
        ToolMissingError: the traefik binary is missing (tools/build-traefik.sh).
    """
    if not binary.is_file():
        raise ToolMissingError(f"{binary} is missing: the sandbox's ingress needs it", fix="run tools/build-traefik.sh")
    kubeconfig = yaml.safe_load(Path(state["kubeconfig"]).read_text())
    users = {u["name"]: u["user"] for u in kubeconfig["users"]}
    stands: dict[str, TraefikStand] = {}
    for name, cluster in state["clusters"].items():
        root = state_dir / "traefik" / name
        root.mkdir(parents=True, exist_ok=True)
        token_file, ca_file = root / "token", Path(cluster["root"]) / "pki" / "ca.crt"
        token_file.touch(mode=0o600)
        token_file.write_text(users[f"{cluster['context']}-admin"]["token"])
        stand = TraefikStand(name, free_port(), free_port(), free_port())
        dynamic = root / "dynamic.yaml"
        dynamic.write_text(DYNAMIC)
        rec = start_process(f"{name}/traefik", argv(binary, cluster["api_url"], token_file, ca_file, stand, dynamic),
                            root / "traefik.log", port=stand.api, cwd=root)
        state["processes"].append(rec.to_json())
        _wait_listening(stand, rec.log, f"traefik of {name}")
        stands[name] = stand
    state["traefik"] = {n: s.to_json() for n, s in stands.items()}
    return stands


def wait_routers(stand: TraefikStand, names: list[str], timeout: float = 60.0) -> list[dict[str, Any]]:
    """Wait until Traefik's API lists a router for each of ``names`` (substrings); return every router."""
    end = time.monotonic() + timeout
    while True:
        routers: list[dict[str, Any]] = stand.api_get("/api/http/routers")
        if all(any(n in r.get("name", "") for r in routers) for n in names) or time.monotonic() > end:
            return routers
        time.sleep(0.5)
