"""Phase 80 · ingress, certificates, DNS and the cutover — without needless re-issue, reversible.

The ingress: K3s's bundled Traefik serves the migrated ``nginx`` Ingresses through its NGINX provider
(ingress-nginx is retired upstream); every ``nginx.ingress.kubernetes.io/*`` annotation is classified,
because Traefik ignores the ones it does not translate. The certificates: cert-manager's ACME account
keys, then the TLS Secrets with their annotations, then the issuers and Certificates, so cert-manager
finds valid certificates and asks Let's Encrypt for nothing; a predictor applies cert-manager's own
re-issue triggers to each. DNS: read from the authoritative server (current answers, TTLs, owners),
handed from the source's external-dns to the target's only on *go* and ``cutover: true``
(:mod:`k3smig_lib.phases.cutover`); ``k3smig rollback`` reverses it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from k3smig_lib.core.certplan import LE_WEEKLY_LIMIT, Prediction, issuances_per_domain, predict
from k3smig_lib.core.config import Settings
from k3smig_lib.core.nginxannot import nginx_annotations
from k3smig_lib.core.objects import Obj, annotations_of, get_path, ref
from k3smig_lib.core.order import sort_for_apply
from k3smig_lib.phases._base import step
from k3smig_lib.phases.catalog import ReportStatus, read_result
from k3smig_lib.phases.context import cleaned, open_source, open_target
from k3smig_lib.phases.export import read_cleaned
from k3smig_lib.phases.netlive import NetworkLive
from k3smig_lib.phases.secrets import migrated_secrets

PHASE = "80_configure_network"


def clock(cfg: Settings) -> datetime:
    """The time certificates are judged at: ``as_of`` when set (the demo pins it), else now."""
    if cfg.as_of:
        return datetime.fromisoformat(cfg.as_of.replace("Z", "+00:00")).astimezone(UTC)
    return datetime.now(UTC)


def acme_key_secrets(issuers: list[Obj]) -> dict[str, str]:
    """``Secret/<ns>/<name>`` of each ACME account key -> the issuer that names it (``privateKeySecretRef``).

    A ClusterIssuer's key lives in cert-manager's cluster resource namespace (``cert-manager``).
    """
    out = {}
    for issuer in issuers:
        name = get_path(issuer, "spec.acme.privateKeySecretRef.name")
        if name:
            ns = ref(issuer).namespace or "cert-manager"
            out[f"Secret/{ns}/{name}"] = ref(issuer).id
    return out


class Network(NetworkLive):
    """State of the network notebook."""

    def __init__(self, cfg: Settings) -> None:
        super().__init__(cfg=cfg, phase=PHASE)
        self.target = open_target(cfg)
        self.objects = read_cleaned(cfg)
        self.ingresses = [o for o in self.objects if o.get("kind") == "Ingress"]
        self.secrets = {ref(s).id: s for s in migrated_secrets(cfg)}
        self.tls = {sid: s for sid, s in self.secrets.items() if s.get("type") == "kubernetes.io/tls"}
        self.issuers = [o for o in self.objects if o.get("kind") in ("Issuer", "ClusterIssuer")]
        kept = {ref(o).id for o in self.objects}
        # every source Certificate: those owned by an Ingress are dropped (W1) and recreated by ingress-shim
        self.certs = [c.original for c in cleaned(cfg, open_source(cfg)).objects if c.ref.kind == "Certificate"]
        self.shim = {ref(c).id for c in self.certs if ref(c).id not in kept}
        self.predictions: list[Prediction] = []
        self.checks_by_step: dict[str, list[dict[str, Any]]] = {}
        infra = read_result(cfg, "10_provision_infrastructure") or {}
        self.address = cfg.ingress_address or str((infra.get("summary") or {}).get("public_ip", "") or "")
        self.summary["ingress controller"] = cfg.ingress_controller

    def check(self, name: str, ok: bool | None, detail: str) -> None:
        """One go/no-go check (``None``: not applicable here, never blocks), kept with the step that made it."""
        self.checks_by_step.setdefault(self.current_step, []).append(
            {"check": name, "result": "n/a" if ok is None else ReportStatus.of(ok), "detail": detail})

    def hosts(self) -> list[str]:
        """Every Ingress host in the managed zone, sorted."""
        return sorted({r.get("host", "") for i in self.ingresses for r in get_path(i, "spec.rules", []) or []
                       if r.get("host", "").endswith(self.cfg.domain)})

    def ingress_table(self) -> pd.DataFrame:
        """Ingresses as the target serves them: class, controller, hosts, TLS Secret migrated."""
        rows = []
        controller = ("Traefik (K3s bundled, kubernetesIngressNGINX provider)" if self.cfg.ingress_controller ==
                      "traefik" else "ingress-nginx (retired upstream: no security fixes)")
        for ing in self.ingresses:
            for tls in get_path(ing, "spec.tls", []) or [{}]:
                secret_id = f"Secret/{ref(ing).namespace}/{tls.get('secretName', '')}"
                rows.append({"ingress": ref(ing).id, "class": get_path(ing, "spec.ingressClassName", ""),
                             "served by": controller, "hosts": ", ".join(tls.get("hosts", [])),
                             "tls secret": tls.get("secretName", ""), "secret migrated": secret_id in self.tls,
                             "router promised": ", ".join(f"Host(`{h}`) + TLS" for h in tls.get("hosts", []))
                             if self.cfg.ingress_controller == "traefik" else ""})
            if get_path(ing, "spec.ingressClassName") != self.cfg.ingress_class:
                self.errors.append(f"{ref(ing).id} does not use ingress class {self.cfg.ingress_class}")
        if self.cfg.ingress_controller == "ingress-nginx":
            self.warnings.append("ingress_controller: ingress-nginx is retired upstream (no releases, no security "
                                 "fixes); plan the move to K3s's Traefik (ingress_controller: traefik)")
        return self.save_table("ingresses", pd.DataFrame(rows))

    @step
    def annotations(self) -> pd.DataFrame:
        """Every ``nginx.ingress.kubernetes.io/*`` annotation: supported, needs a middleware (which), unsupported."""
        rows = []
        for ing in self.ingresses:
            for v in nginx_annotations(annotations_of(ing)):
                rows.append({"ingress": ref(ing).id, "annotation": v.annotation, "value":
                             annotations_of(ing)[v.annotation], "traefik": v.support,
                             "middleware": v.middleware, "note": v.note})
        frame = pd.DataFrame(rows, columns=["ingress", "annotation", "value", "traefik", "middleware", "note"])
        traefik = self.cfg.ingress_controller == "traefik"
        unsupported = [f"{r['ingress']} {r['annotation']}" for r in rows if r["traefik"] == "unsupported"]
        needs = [f"{r['ingress']} {r['annotation']} → {r['middleware']}" for r in rows if r["traefik"] == "middleware"]
        if traefik and unsupported:
            self.warnings.append("annotations Traefik's NGINX provider does not honour (no equivalent): "
                                 + "; ".join(unsupported))
        self.summary["annotations needing a Traefik middleware"] = "; ".join(needs) if traefik and needs else "none"
        self.check("no unsupported nginx annotation", not (traefik and unsupported),
                   "; ".join(unsupported) or ("none" if traefik else "ingress-nginx serves them"))
        self.summary["nginx annotations"] = len(rows)
        return self.save_table("nginx_annotations", frame)

    def migration_order(self) -> pd.DataFrame:
        """ACME account keys, TLS Secrets, issuers, Certificates: the order they are applied in, and why."""
        keys = acme_key_secrets(self.issuers)
        role = {sid: "ACME account key" for sid in keys if sid in self.secrets}
        role |= {sid: "TLS Secret (cert-manager annotations kept)" for sid, s in self.tls.items()
                 if any(k.startswith("cert-manager.io/") for k in annotations_of(s))}
        objs = [self.secrets[s] for s in role] + self.issuers + [c for c in self.certs if ref(c).id not in self.shim]
        rows: list[dict[str, str]] = []
        for pos, obj in enumerate(sort_for_apply(objs), start=1):
            rid = ref(obj).id
            rows.append({"position": str(pos), "object": rid, "role": role.get(rid, str(obj.get("kind", "")))})
        ranks = [("ACME" in r["role"], "TLS" in r["role"], r["role"] in ("Issuer", "ClusterIssuer"),
                  r["role"] == "Certificate") for r in rows]
        first = {i: next((n for n, flags in enumerate(ranks) if flags[i]), -1) for i in range(4)}
        last = {i: max((n for n, flags in enumerate(ranks) if flags[i]), default=-1) for i in range(4)}
        ordered = all(last[i] < first[j] for i in range(4) for j in range(i + 1, 4) if last[i] >= 0 and first[j] >= 0)
        if not ordered:
            self.errors.append("cert-manager objects are not applied in the order account keys → TLS Secrets → "
                               "issuers → Certificates")
        rows += [{"position": "-", "object": cid, "role": "Certificate, recreated by cert-manager's ingress-shim from "
                  "its Ingress (W1): same spec, finds its migrated TLS Secret"} for cid in sorted(self.shim)]
        missing = sorted(set(keys) - set(self.secrets))
        for sid in missing:
            self.warnings.append(f"{keys[sid]} names {sid}, which is not migrated: cert-manager registers a new "
                                 "ACME account")
        return self.save_table("certificate_order", pd.DataFrame(rows))

    @step
    def certificates(self) -> pd.DataFrame:
        """Per Certificate: kept or "will re-issue: <reason>", serial, expiry; Let's Encrypt's weekly limit."""
        now = clock(self.cfg)
        self.predictions = [predict(c, self.secrets.get(f"Secret/{ref(c).namespace}/{get_path(c, 'spec.secretName')}"),
                                    now) for c in self.certs]
        rows = [{"certificate": p.certificate, "secret": p.secret, "dns names": ", ".join(p.dns_names),
                 "serial": p.serial, "not after": p.not_after, "renewal": p.renewal, "on the target": p.verdict}
                for p in self.predictions]
        acme = {f"{ref(c).namespace}/{ref(c).name}" for c in self.certs if self._is_acme(c)}
        counts = issuances_per_domain(self.predictions, acme)
        for domain, n in sorted(counts.items()):
            if n > LE_WEEKLY_LIMIT:
                self.errors.append(f"{n} certificates would be issued for {domain}: over Let's Encrypt's limit of "
                                   f"{LE_WEEKLY_LIMIT} per registered domain per 7 days; migrate their TLS Secrets")
        kept = sum(1 for p in self.predictions if not p.reissue)
        self.summary |= {"certificates kept": kept, "certificates re-issued": len(self.predictions) - kept,
                         "judged at": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
        self.summary["expected Let's Encrypt issuances"] = dict(counts) or "none"
        self.check("Let's Encrypt weekly limit", all(n <= LE_WEEKLY_LIMIT for n in counts.values()),
                   f"{sum(counts.values())} new certificate(s) expected, limit {LE_WEEKLY_LIMIT} per domain per week")
        return self.save_table("certificates", pd.DataFrame(rows, columns=[
            "certificate", "secret", "dns names", "serial", "not after", "renewal", "on the target"]))

    def _is_acme(self, cert: Obj) -> bool:
        issuer_ref = get_path(cert, "spec.issuerRef", {}) or {}
        for issuer in self.issuers:
            same_ns = issuer.get("kind") == "ClusterIssuer" or ref(issuer).namespace == ref(cert).namespace
            if ref(issuer).name == issuer_ref.get("name") and issuer.get("kind") == issuer_ref.get("kind") and same_ns:
                return bool(get_path(issuer, "spec.acme"))
        return False


def start(cfg: Settings) -> Network:
    """Read the cleaned ingresses, certificates and TLS Secrets (phase 80)."""
    return Network(cfg)
