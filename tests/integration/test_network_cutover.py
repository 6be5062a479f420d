"""The cutover in the sandbox with real parts: knotd (TSIG), two real external-dns, a real Traefik per cluster.

Order matters and is the migration's own: the source's external-dns publishes its hosts; phases 00-70
move the applications while the target's external-dns runs ``upsert-only`` beside it (the zone must
not change); phase 80 probes, records go and hands DNS over; ``k3smig rollback`` gives it back.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k3smig_lib.core.dnszone import Record, Server, axfr, owners, query
from k3smig_lib.k8s import handover
from k3smig_lib.k8s.client import ClusterRef, Kube
from k3smig_lib.phases.cutover import Handover
from k3smig_lib.runbook import runner
from k3smig_lib.runbook.ledger import read_ledger, verify
from k3smig_lib.runbook.rollback import rollback
from k3smig_lib.sandbox import dnsstand
from k3smig_lib.sandbox.network import NetworkStand, network_down, network_up
from k3smig_lib.sandbox.procs import free_port, listening_sockets
from k3smig_lib.sandbox.traefikstand import NO_BACKEND, wait_routers

REPO = Path(__file__).resolve().parents[2]
PARAMS = REPO / "parameters" / "sandbox.yaml"
HOSTS = ("grafana.example.org", "vault.example.org")
VM = dnsstand.VM_ADDRESS  # ingress_address in the stand's network.yaml
TSIG_ENV = "K3SMIG_DNS_TSIG_SECRET"

pytestmark = pytest.mark.integration


def poll(check: Any, what: str, limit: int = 240) -> Any:
    """Poll ``check`` once a second until it returns a truthy value (bounded: ``limit`` tries)."""
    for _ in range(limit):
        value = check()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"{what}: not reached after {limit} tries")


def zone(net: NetworkStand) -> list[Record]:
    return axfr(Server(net.dns.host, net.dns.port), net.dns.zone, net.dns.key_name, net.dns.tsig_secret())


def foreign(records: list[Record]) -> set[Record]:
    """Every record that is not SOA: the zone as the handover must leave it outside the planned hosts."""
    return {r for r in records if r.rtype != "SOA"}


def kube(sandbox: Any, side: str) -> Kube:
    return Kube.of(ClusterRef(str(sandbox.kubeconfig), sandbox.contexts[side], side))


def replicas(k: Kube) -> dict[str, int]:
    out = {}
    for plural in ("deployments", "statefulsets"):
        for obj in k.json("GET", f"/apis/apps/v1/{plural}", counter="lists").get("items") or []:
            out[f"{plural}/{obj['metadata']['namespace']}/{obj['metadata']['name']}"] = handover.replicas_of(obj)
    return out


def table(run_dir: Path, name: str) -> list[dict[str, str]]:
    with (run_dir / "artifacts" / "80_configure_network" / name).open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def net(sandbox: Any, seeded: Any) -> Iterator[NetworkStand]:
    stand = network_up(sandbox.state_dir)
    previous = os.environ.get(TSIG_ENV)
    os.environ[TSIG_ENV] = stand.dns.tsig_secret()  # the run's kernels read it from the environment only
    poll(lambda: all(owners(zone(stand)).get(h) == dnsstand.SOURCE_OWNER for h in (*HOSTS, dnsstand.UNPLANNED_HOST)),
         "the source's external-dns publishes its hosts")
    yield stand
    network_down(sandbox.state_dir)  # by the PIDs it started: later tests see the sandbox as it was
    if previous is None:
        os.environ.pop(TSIG_ENV, None)
    else:
        os.environ[TSIG_ENV] = previous


@pytest.fixture(scope="module")
def live(sandbox: Any, net: NetworkStand, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("cutover")
    return {"source_kubeconfig": str(sandbox.kubeconfig), "target_kubeconfig": str(sandbox.kubeconfig),
            "export_dir": str(work / "export"), **net.parameters, "runs": work / "runs"}


def run(live: dict[str, Any], phases: str, **extra: Any) -> runner.RunOutcome:
    overrides = {k: v for k, v in live.items() if k != "runs"} | extra
    return runner.run(PARAMS, phases=phases, runs_root=live["runs"], overrides=overrides)


@pytest.fixture(scope="module")
def before(sandbox: Any, net: NetworkStand) -> dict[str, Any]:
    """The source as it runs before the migration: replicas of every workload, the zone."""
    return {"replicas": replicas(kube(sandbox, "source")), "zone": zone(net)}


@pytest.fixture(scope="module")
def moved(live: dict[str, Any], before: dict[str, Any], net: NetworkStand) -> runner.RunOutcome:
    # the session's sandbox target may already hold these applications from an earlier test's migration
    # (test_live_pipeline): converge them, as an operator re-running a migration would
    outcome = run(live, "00-70", existing="update")
    assert outcome.status in ("Completed", "PartiallyFailed"), failures(outcome)
    log = Path(net.dns.key_file).parent / "external-dns-target.log"
    # a whole sync of the target's instance with the migrated Ingresses: it wants the VM address and declines
    refused = [f"{h} 0 IN A  {VM} [] because owner id does not match" for h in HOSTS]
    poll(lambda: log.is_file() and all(r in log.read_text() for r in refused),
         "the target's external-dns declines the source's records")
    return outcome


def failures(outcome: runner.RunOutcome) -> str:
    """The failed phase's errors, for assertion messages."""
    records = read_ledger(outcome.run_dir)["phases"]
    return "; ".join(f"{r['phase']}: {r['errors']}" for r in records if r["status"] == "Failed")


@pytest.fixture(scope="module")
def cutover(moved: runner.RunOutcome) -> runner.RunOutcome:
    return runner.resume(moved.run_dir, phases="80-90")  # the cutover later, in the same run


def rule_hosts(rule: str) -> str:
    """A Traefik rule with either quoting Traefik accepts (``Host(`h`)``, ``Host("h")``) made comparable."""
    return rule.replace("`", '"')


def test_before_cutover_the_targets_upsert_only_external_dns_changes_nothing(moved, before, net):
    # both instances run, the target publishes the same hosts with another address: the zone is unchanged
    log = (Path(net.dns.key_file).parent / "external-dns-target.log").read_text()
    assert "--policy=upsert-only" in log and f"--txt-owner-id={dnsstand.TARGET_OWNER}" in log
    assert foreign(zone(net)) == foreign(before["zone"])


def dry_run(net: NetworkStand, sandbox: Any, flags: dict[str, list[str]]) -> str:
    """One ``--once --dry-run`` pass of the real external-dns with the target's arguments and ``flags``: its log."""
    target_ed = handover.get(kube(sandbox, "target"), "Deployment", *dnsstand.EXTERNAL_DNS)
    assert target_ed is not None
    work = Path(net.dns.key_file).parent
    args = handover.set_flags(handover.args_of(target_ed), {**flags, "metrics-address": [f"127.0.0.1:{free_port()}"]})
    args += ["--once", "--dry-run"]  # kingpin's boolean flags take no value
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work),
           dnsstand.TSIG_ENV: net.dns.tsig_secret()}
    done = subprocess.run([str(dnsstand.tools_bin() / "external-dns"), *args,
                           f"--kubeconfig={work / 'target.kubeconfig'}"], env=env, cwd=work,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout + done.stderr


def test_an_unscoped_migrate_from_txt_owner_would_delete_the_sources_other_host_and_the_guard_hides_it(
        moved, before, net, sandbox):
    # external-dns#5993 with the real binary, dry run: sync + --migrate-from-txt-owner adopts every record of
    # the old owner, and deletes the one the target does not publish (the source's status host) ...
    unplanned = dnsstand.UNPLANNED_HOST
    assert owners(before["zone"])[unplanned] == dnsstand.SOURCE_OWNER
    migrate = {"policy": ["sync"], "migrate-from-txt-owner": [dnsstand.SOURCE_OWNER]}
    unguarded = dry_run(net, sandbox, migrate)
    assert f"Removing RR: {unplanned}" in unguarded, unguarded[-3000:]
    # ... the cutover's --regex-domain-filter (the planned hosts only) leaves it out of sight: nothing else removed
    regex = Handover(list(HOSTS), net.dns.zone, Server(net.dns.host, net.dns.port), "", dnsstand.EXTERNAL_DNS).regex()
    guarded = dry_run(net, sandbox, {**migrate, "regex-domain-filter": [regex]})
    removed = [line for line in guarded.splitlines() if "Removing RR:" in line]
    assert all(any(h in line for h in HOSTS) for line in removed), removed
    added = [line for line in guarded.splitlines() if "Adding RR:" in line and f" A {VM}" in line]
    assert all(any(f"Adding RR: {h} " in line for line in added) for h in HOSTS), guarded[-3000:]
    assert foreign(zone(net)) == foreign(before["zone"])  # dry runs: the zone is as it was


def test_traefik_serves_the_migrated_ingresses_with_the_routers_the_report_promised(moved, cutover, net):
    promised = table(cutover.run_dir, "ingresses.csv")
    routers = wait_routers(net.traefik["target"], [r["hosts"] for r in promised])
    rules = {r["rule"]: r for r in routers if r.get("provider") == "kubernetesingressnginx"}
    for row in promised:
        assert row["router promised"] == f"Host(`{row['hosts']}`) + TLS"
        matching = [r for rule, r in rules.items() if rule_hosts(f"Host(`{row['hosts']}`)") in rule_hosts(rule)]
        assert matching, f"no Traefik router for {row['hosts']}: {sorted(rules)}"
        assert any(r.get("tls") is not None for r in matching)  # the TLS Secret is served
    annotations = table(cutover.run_dir, "nginx_annotations.csv")
    assert [(a["annotation"], a["traefik"]) for a in annotations] == [
        ("nginx.ingress.kubernetes.io/proxy-body-size", "middleware")]
    middlewares = {m["name"] for m in net.traefik["target"].api_get("/api/http/middlewares")}
    # proxy-body-size is ignored as the report says: Traefik made no middleware for it
    assert not {m for m in middlewares if "buffering" in m.lower()}
    assert f"{NO_BACKEND}@file" in middlewares


def test_cutover_on_go_moves_the_hosts_and_touches_no_other_record(cutover, before, net, sandbox):
    assert cutover.status in ("Completed", "PartiallyFailed"), failures(cutover)
    run_dir = cutover.run_dir
    decision = json.loads((run_dir / "artifacts" / "80_configure_network" / "go_no_go.json").read_text())
    assert decision["decision"] == "go", decision["failed"]
    server = Server(net.dns.host, net.dns.port)
    for host in HOSTS:
        assert [r.value for r in query(server, host, "A")] == [VM]
    after = zone(net)
    assert all(owners(after)[h] == dnsstand.TARGET_OWNER for h in HOSTS)
    untouched = {r for r in foreign(before["zone"]) if not any(h.split(".")[0] in r.name for h in HOSTS)}
    assert untouched <= foreign(after) and owners(after)["mail.example.org"] == "other-cluster"
    assert owners(after)[dnsstand.UNPLANNED_HOST] == dnsstand.SOURCE_OWNER  # the source's other host stays
    guard = next(c for c in decision["checks"] if c["check"] == "migrate-from-txt-owner scoped to the planned hosts")
    assert f"hides 1 other record(s) of {dnsstand.SOURCE_OWNER}" in guard["detail"]
    certs = table(run_dir, "certificates.csv")
    assert {c["on the target"] for c in certs} == {"kept"} and len(certs) == 2
    probes = table(run_dir, "probes.csv")
    assert {p["result"] for p in probes} == {"PASS"} and all(p["serial served"] == p["serial migrated"]
                                                               for p in probes)
    source_ed = handover.get(kube(sandbox, "source"), "Deployment", "external-dns", "external-dns")
    assert source_ed is not None and handover.replicas_of(source_ed) == 0
    assert source_ed["metadata"]["annotations"][handover.PRE_CUTOVER_REPLICAS] == "1"
    steps = read_ledger(run_dir)["phases"]
    network = next(r for r in steps if r["phase"] == "80_configure_network")
    assert any("external-dns" in s and "reconfigure" in s for s in network["summary"]["cutover steps"])


def test_rollback_gives_the_source_its_replicas_and_its_records_back(cutover, before, net, sandbox):
    outcome = rollback(cutover.run_dir)
    assert outcome.status == "Completed", json.loads((outcome.report.parent / "rollback.json").read_text())
    after = zone(net)
    for host in HOSTS:
        assert [r.value for r in query(Server(net.dns.host, net.dns.port), host, "A")] == [dnsstand.SOURCE_LB]
    assert foreign(after) == foreign(before["zone"])  # owners, addresses and TTLs as before
    assert replicas(kube(sandbox, "source")) == before["replicas"]
    target_ed = handover.get(kube(sandbox, "target"), "Deployment", "external-dns", "external-dns")
    assert target_ed is not None and "--policy=upsert-only" in handover.args_of(target_ed)
    ledger = read_ledger(cutover.run_dir)
    assert ledger["phases"][-1]["phase"] == "rollback" and ledger["phases"][-1]["status"] == "Completed"
    assert verify(cutover.run_dir) == []


def test_the_network_stand_listens_on_127_0_0_1_only(net, sandbox):
    state = json.loads((sandbox.state_dir / "sandbox.json").read_text())
    pids = [p["pid"] for p in state["processes"] if p["name"].startswith("dns/") or p["name"].endswith("/traefik")]
    state_file = Path(net.dns.key_file).parent / "supervisor.json"

    def both_external_dns_listening() -> list[int]:
        # rollback (the test before) has just restarted the source's instance: wait until the supervisor
        # reports both clusters' processes again and each has bound its sockets
        children = json.loads(state_file.read_text())
        found = [children[side]["pid"] for side in ("source", "target") if side in children]
        return found if len(found) == 2 and all(listening_sockets([pid]) for pid in found) else []

    pids += poll(both_external_dns_listening, "both clusters' external-dns run and listen")
    assert len(pids) == 6 and {addr for addr, _ in listening_sockets(pids)} == {"127.0.0.1"}
