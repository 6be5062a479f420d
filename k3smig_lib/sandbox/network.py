"""The sandbox's network stand: DNS (knotd + real external-dns on both clusters) and Traefik per cluster.

Started after ``up`` (and the seed) by ``k3smig sandbox up --network`` and by the integration tests;
its processes join the sandbox state, so ``down`` stops them by PID with the rest (``network_down``
stops them alone). It writes
``network.yaml`` into the state folder: the parameters a run needs to reach it (DNS server, TSIG key
*name*, probe addresses), for ``k3smig run … --overlay``. The TSIG secret stays in ``dns/tsig.secret``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from k3smig_lib.sandbox import dnsstand, traefikstand
from k3smig_lib.sandbox.lifecycle import _load_state, _save_state
from k3smig_lib.sandbox.procs import ProcessRecord, is_running, stop_process

NETWORK_FILE = "network.yaml"


@dataclass(frozen=True)
class NetworkStand:
    """What the network stand offers a run."""

    dns: dnsstand.DnsStand
    traefik: dict[str, traefikstand.TraefikStand]
    parameters: dict[str, Any]


def network_up(state_dir: Path) -> NetworkStand:
    """Start the DNS stand and one Traefik per cluster for the running sandbox in ``state_dir``.

    Raises:
        ToolMissingError: knotd, external-dns or traefik is missing.
        FatalError: no sandbox runs there.
    """
    from k3smig_lib.errors import FatalError

    state_dir = state_dir.resolve()
    state = _load_state(state_dir)
    if state is None:
        raise FatalError(f"no sandbox in {state_dir}", fix="run `k3smig sandbox up` first")
    contexts = {name: c["context"] for name, c in state["clusters"].items()}
    try:
        dns = dnsstand.start(state_dir, state, Path(state["kubeconfig"]), contexts)
        traefik = traefikstand.start(state_dir, state, dnsstand.tools_bin() / "traefik")
    finally:
        _save_state(state_dir, state)
    params = {"dns_server": f"{dns.host}:{dns.port}", "dns_tsig_keyname": dns.key_name, "domain": dns.zone,
              "source_txt_owner_id": dnsstand.SOURCE_OWNER, "txt_owner_id": dnsstand.TARGET_OWNER,
              "probe_address": f"127.0.0.1:{traefik['target'].websecure}",
              "source_probe_address": f"127.0.0.1:{traefik['source'].websecure}",
              "ingress_address": dnsstand.VM_ADDRESS, "cutover": True}
    (state_dir / NETWORK_FILE).write_text(
        "# Written by `k3smig sandbox up --network`: how a run reaches the sandbox's DNS and Traefik.\n"
        + yaml.safe_dump(params, sort_keys=True))
    return NetworkStand(dns, traefik, params)


def network_down(state_dir: Path) -> list[str]:
    """Stop the network stand's processes (by the PIDs ``network_up`` recorded), keep the clusters running.

    Returns:
        Names of the processes stopped.
    """
    state_dir = state_dir.resolve()
    state = _load_state(state_dir)
    if state is None:
        return []
    ours = [p for p in state["processes"] if p["name"].startswith("dns/") or p["name"].endswith("/traefik")]
    stopped = []
    for data in reversed(ours):
        rec = ProcessRecord.from_json(data)
        if is_running(rec):
            stop_process(rec)
            stopped.append(rec.name)
    state["processes"] = [p for p in state["processes"] if p not in ours]
    for key in ("dns", "traefik"):
        state.pop(key, None)
    _save_state(state_dir, state)
    (state_dir / NETWORK_FILE).unlink(missing_ok=True)
    return stopped
