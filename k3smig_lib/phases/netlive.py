"""Phase 80, the live half: DNS as it stands, HTTPS probes, the go/no-go record and the cutover itself.

Every check lands in ``go_no_go.json`` with its result; DNS is switched only when every check
passes *and* the parameters say ``apply: true`` and ``cutover: true``. What the cutover needs to be
reversed (hosts, the addresses they answered before, owners, the Deployments it changed) is written
to ``cutover_plan.json`` *before* the first change, so ``k3smig rollback`` works even after a crash.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pandas as pd

from k3smig_lib.core.certplan import serial_of
from k3smig_lib.core.config import Settings
from k3smig_lib.core.dnszone import Record, Server, owners
from k3smig_lib.core.objects import Obj, get_path, ref
from k3smig_lib.core.probes import probe
from k3smig_lib.errors import K3sMigError
from k3smig_lib.k8s import handover
from k3smig_lib.phases._base import PhaseRun, step
from k3smig_lib.phases.catalog import ReportStatus
from k3smig_lib.phases.context import source_ref, target_ref
from k3smig_lib.phases.cutover import Handover, addresses, outside_plan, switch
from k3smig_lib.phases.deploy import HELD_UNTIL, INTENDED, is_singleton

EXTERNAL_DNS_TTL = "external-dns.alpha.kubernetes.io/ttl"
#: The steps that record go/no-go checks, in the order the go/no-go table lists their checks.
CHECK_STEPS = ("annotations", "certificates", "dns_plan", "probes", "go_no_go")


def handover_of(cfg: Settings, hosts: list[str]) -> Handover:
    """The handover description the settings give (both directions use it)."""
    ns, _, name = cfg.external_dns.partition("/")
    return Handover(hosts, cfg.domain, Server.parse(cfg.dns_server), cfg.dns_tsig_keyname, (ns, name))


def runners(objects: list[Obj]) -> list[tuple[str, str, str]]:
    """Workloads that must run on one cluster only (a GitLab Runner's registration)."""
    return [(str(o["kind"]), ref(o).namespace, ref(o).name) for o in objects if is_singleton(o)]


class NetworkLive(PhaseRun):
    """DNS plan, probes, go/no-go and cutover (mixed into the phase-80 state)."""

    ingresses: list[Obj]
    tls: dict[str, Obj]
    objects: list[Obj]
    address: str
    #: Go/no-go checks by the step that recorded them (see :attr:`checks`).
    checks_by_step: dict[str, list[dict[str, Any]]]
    zone: list[Record]

    def check(self, name: str, ok: bool | None, detail: str) -> None:  # pragma: no cover - see Network
        """Implemented by the phase."""
        raise NotImplementedError

    def hosts(self) -> list[str]:  # pragma: no cover - see Network
        """Implemented by the phase."""
        raise NotImplementedError

    @property
    def checks(self) -> list[dict[str, Any]]:
        """Every go/no-go check, in step order whatever order the cells ran in."""
        order = [*CHECK_STEPS, *sorted(set(self.checks_by_step) - set(CHECK_STEPS))]
        return [c for name in order for c in self.checks_by_step.get(name, [])]

    @property
    def live(self) -> bool:
        """True when the target is a live cluster (a directory target has no ingress, no DNS to switch)."""
        return bool(self.cfg.target_kind == "cluster")

    @step
    def dns_plan(self) -> pd.DataFrame:
        """Records the cutover moves: current answer, TTL and owner; address and owner after; the TTL plan."""
        hosts, cfg = self.hosts(), self.cfg
        self.zone = []
        if cfg.dns_server:
            self.zone = handover_of(cfg, hosts).read_zone()
            self.save_json("zone_before.json", [asdict(r) for r in self.zone])
        own = owners(self.zone)
        rows = []
        for host in hosts:
            current = [r for r in self.zone if r.name == host and r.rtype == "A"]
            ttl = max((r.ttl for r in current), default=0)
            if not cfg.dns_server:
                plan = (f"lower to {cfg.cutover_ttl}s at least one old TTL before cutover "
                        "(dns_server not set: TTL unknown)")
            elif ttl > cfg.cutover_ttl:
                plan = (f"lower to {cfg.cutover_ttl}s at least {ttl}s before cutover — by the source's owner "
                        f"({own.get(host, 'no owner')}): annotation {EXTERNAL_DNS_TTL} on the source Ingress")
            else:
                plan = f"ready: {ttl}s ≤ {cfg.cutover_ttl}s (a client sees the new address within {ttl}s)"
            rows.append({"host": host, "record": "A",
                         "current": ", ".join(addresses(self.zone, host)) or ("not read" if not cfg.dns_server
                                                                             else "none"),
                         "current ttl": ttl if current else "", "current owner": own.get(host, ""),
                         "after cutover": self.address or "(VM address: known after phase 10)",
                         "owner after": cfg.txt_owner_id, "ttl plan": plan})
        if cfg.dns_server:
            high = [f"{r['host']} ({r['current ttl']}s)" for r in rows if r["current ttl"] and
                    int(r["current ttl"]) > cfg.cutover_ttl]
            self.check("TTLs lowered before cutover", not high, "; ".join(high) or f"every TTL ≤ {cfg.cutover_ttl}s")
            foreign = {h: o for h, o in own.items() if h in hosts and o not in (cfg.source_txt_owner_id,
                                                                                  cfg.txt_owner_id)}
            self.check("hosts owned by the source or the target", not foreign,
                       "; ".join(f"{h}: {o}" for h, o in foreign.items()) or "yes")
            guarded = outside_plan(self.zone, cfg.source_txt_owner_id, hosts)
            self.check("migrate-from-txt-owner scoped to the planned hosts", True,
                       f"--regex-domain-filter {handover_of(cfg, hosts).regex()} hides "
                       f"{len(guarded)} other record(s) of {cfg.source_txt_owner_id} (external-dns#5993)")
        else:
            self.check("DNS readable", None, "dns_server not set")
        self.summary["hosts"] = len(hosts)
        return self.save_table("dns_plan", pd.DataFrame(rows))

    @step
    def probes(self) -> pd.DataFrame:
        """HTTPS to the target ingress with SNI and Host set, compared with the same probe through the source."""
        self.dns_plan()  # the zone it read: where the source answers
        cfg = self.cfg
        rows: list[dict[str, Any]] = []
        tls_hosts = {h: f"Secret/{ref(i).namespace}/{t.get('secretName', '')}" for i in self.ingresses
                     for t in get_path(i, "spec.tls", []) or [] for h in t.get("hosts", [])}
        serials = {sid: serial_of(secret) for sid, secret in self.tls.items()}
        target_at = cfg.probe_address or (f"{self.address}:443" if self.address else "")
        for host in self.hosts():
            path = cfg.probe_paths.get(host, "/")
            source_at = cfg.source_probe_address or next((f"{a}:443" for a in addresses(self.zone, host)), "")
            if not self.live or not target_at:
                why = "directory target: no ingress to probe" if not self.live else "no target address"
                rows.append({"host": host, "path": path, "target address": target_at, "result": f"not run ({why})"})
                continue
            secret = tls_hosts.get(host, "")
            want = serials.get(secret, "")
            t = probe(host, target_at, path)
            s = probe(host, source_at, path) if source_at else None
            ok = (t.tls and bool(want) and t.serial == want and s is not None and s.tls and t.status == s.status
                  and t.body_sha256 == s.body_sha256)
            rows.append({"host": host, "path": path, "target address": target_at, "tls": t.tls,
                         "serial served": t.serial, "serial migrated": want, "status": t.status,
                         "body sha256": t.body_sha256, "source address": source_at,
                         "source status": s.status if s else "", "source body sha256": s.body_sha256 if s else "",
                         "result": ReportStatus.of(ok), "error": t.error or (s.error if s else "")})
            self.check(f"probe {host}", ok, f"{target_at} serial {t.serial or '-'} status {t.status} vs source "
                       f"{source_at or '-'} status {s.status if s else '-'}")
        if not rows or not self.live:
            self.check("HTTPS probes", None, "directory target")
        self.summary["probed addresses"] = sorted({r["target address"] for r in rows if r.get("target address")})
        return self.save_table("probes", pd.DataFrame(rows))

    @step
    def go_no_go(self) -> pd.DataFrame:
        """Every check with its result, and the decision (written to ``go_no_go.json``)."""
        for name in CHECK_STEPS[:-1]:  # every step that records a check, each done once
            getattr(self, name)()
        self.check("live target", self.live or None, "cluster" if self.live else "directory target: nothing to switch")
        self.check("target address known", bool(self.address) if self.live else None, self.address or "unknown")
        failed = [c["check"] for c in self.checks if c["result"] == ReportStatus.FAIL]
        decision = "go" if self.live and not failed else "no-go"
        self.save_json("go_no_go.json", {"decision": decision, "failed": failed, "checks": self.checks})
        self.summary["go/no-go"] = decision + (f" ({', '.join(failed)})" if failed else "")
        return self.save_table("go_no_go", pd.DataFrame(self.checks))

    @step
    def cutover(self) -> pd.DataFrame:
        """Switch DNS to the target (only on go with ``apply`` and ``cutover``); every step recorded."""
        self.go_no_go()  # never a switch without the decision
        cfg = self.cfg
        if not (self.live and cfg.apply and cfg.cutover):
            why = ("directory target" if not self.live else "dry run (apply: false)" if not cfg.apply
                   else "cutover: false (plan only)")
            self.summary["cutover"] = f"not run: {why}"
            return self.save_table("cutover_steps", pd.DataFrame([{"step": "cutover", "result": f"not run: {why}"}]))
        failed = [c["check"] for c in self.checks if c["result"] == ReportStatus.FAIL]
        if failed:
            self.errors.append(f"cutover refused: no-go ({', '.join(failed)})")
            return self.save_table("cutover_steps", pd.DataFrame([{"step": "cutover", "result": "refused: no-go"}]))
        hosts = self.hosts()
        h = handover_of(cfg, hosts)
        self.save_json("cutover_plan.json", {
            "hosts": hosts, "before": {host: addresses(self.zone, host) for host in hosts}, "after": self.address,
            "source_owner": cfg.source_txt_owner_id, "target_owner": cfg.txt_owner_id,
            "external_dns": cfg.external_dns, "runners": runners(self.objects)})
        from k3smig_lib.backends.live_target import LiveTarget
        from k3smig_lib.k8s.client import Kube  # only a live cutover needs the Kubernetes client

        source, target = Kube.of(source_ref(cfg)), Kube.of(target_ref(cfg))
        try:
            for kind, ns, name in runners(self.objects):  # one registration: the source's stops first
                h.note(handover.stop(source, "source", kind, ns, name))
                held = handover.get(target, kind, ns, name) or {}
                intended = int((get_path(held, "metadata.annotations", {}) or {}).get(INTENDED, "1"))
                h.note(handover.set_replicas(target, "target", kind, ns, name, intended, {HELD_UNTIL: None}))
                LiveTarget(target_ref(cfg)).wait_ready([handover.get(target, kind, ns, name) or held],
                                                       timeout=cfg.dns_wait_seconds)
                h.note(handover.Step("target", f"{kind}/{ns}/{name}", "ready", "", f"{intended} replicas ready"))
            after = switch(h, (source, cfg.source_txt_owner_id), (target, cfg.txt_owner_id),
                           {host: [self.address] for host in hosts}, cfg.dns_wait_seconds)
            self.save_json("zone_after.json", [asdict(r) for r in after])
            self.summary["cutover"] = "done"
        except K3sMigError as e:
            self.errors.append(f"cutover stopped: {e}")
        finally:
            steps = [asdict(s) for s in h.steps]
            self.summary["cutover steps"] = [f"{s['cluster']}: {s['action']} {s['workload']}: {s['before']} → "
                                             f"{s['after']}" for s in steps]
        return self.save_table("cutover_steps", pd.DataFrame(steps))
