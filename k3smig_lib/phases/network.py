"""Phase 80 · ingress, certificates and DNS on the target — without needless re-issue.

TLS Secrets travel with their cert-manager annotations (KEEP4), so cert-manager finds a valid
certificate and does not hit Let's Encrypt again. external-dns on the new cluster gets its own TXT owner
id and ``upsert-only`` until cutover, so it can never delete the old cluster's records.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from k3smig_lib.core.config import Settings
from k3smig_lib.core.objects import Obj, annotations_of, get_path, ref
from k3smig_lib.phases._base import PhaseRun, read_result
from k3smig_lib.phases._context import open_target
from k3smig_lib.phases.export import read_cleaned
from k3smig_lib.phases.secrets import migrated_secrets

PHASE = "80_configure_network"
RENEW_BEFORE_DAYS = 30


def certificate_facts(secret: Obj) -> dict[str, Any]:
    """Public facts of a TLS Secret's certificate (subject names, expiry). The key is never read."""
    raw = (secret.get("data") or {}).get("tls.crt", "")
    try:
        cert = x509.load_pem_x509_certificate(base64.b64decode(raw))
    except ValueError:
        return {"parsed": False, "valid": False, "sans": "", "not_after": "", "days_left": ""}
    try:
        sans = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        names = ", ".join(sans.get_values_for_type(x509.DNSName))  # type: ignore[attr-defined]
    except x509.ExtensionNotFound:
        names = ""
    not_after, now = cert.not_valid_after_utc, datetime.now(UTC)
    # "valid" means usable today: parsed, and inside its validity window (an expired certificate is not valid)
    return {"parsed": True, "valid": cert.not_valid_before_utc <= now <= not_after, "sans": names,
            "not_after": not_after.strftime("%Y-%m-%d"), "days_left": (not_after - now).days}


class Network(PhaseRun):
    """State of the network notebook."""

    def __init__(self, cfg: Settings) -> None:
        super().__init__(cfg=cfg, phase=PHASE)
        self.target = open_target(cfg)
        self.objects = read_cleaned(cfg)
        self.ingresses = [o for o in self.objects if o.get("kind") == "Ingress"]
        self.tls = {ref(s).id: s for s in migrated_secrets(cfg) if s.get("type") == "kubernetes.io/tls"}

    def ingress_table(self) -> pd.DataFrame:
        """Ingresses as the target serves them: class, hosts, TLS Secret present."""
        rows = []
        for ing in self.ingresses:
            for tls in get_path(ing, "spec.tls", []) or [{}]:
                secret_id = f"Secret/{ref(ing).namespace}/{tls.get('secretName', '')}"
                rows.append({"ingress": ref(ing).id, "class": get_path(ing, "spec.ingressClassName", ""),
                             "hosts": ", ".join(tls.get("hosts", [])), "tls secret": tls.get("secretName", ""),
                             "secret migrated": secret_id in self.tls})
                if get_path(ing, "spec.ingressClassName") != self.cfg.ingress_class:
                    self.errors.append(f"{ref(ing).id} does not use ingress class {self.cfg.ingress_class}")
        return self.save_table("ingresses", pd.DataFrame(rows))

    def certificates(self) -> pd.DataFrame:
        """Each migrated certificate: names, expiry, and whether cert-manager will re-issue it."""
        rows = []
        for sid, secret in sorted(self.tls.items()):
            facts = certificate_facts(secret)
            managed = "cert-manager.io/certificate-name" in annotations_of(secret)
            days = facts["days_left"]
            reissue = "yes (expired or near expiry)" if isinstance(days, int) and days < RENEW_BEFORE_DAYS else "no"
            rows.append({"secret": sid, "managed by cert-manager": managed, **facts, "re-issue on target": reissue})
        self.summary["certificates kept"] = sum(1 for r in rows if r["re-issue on target"] == "no")
        self.summary["certificates expired"] = sum(1 for r in rows if isinstance(r["days_left"], int)
                                                   and r["days_left"] < 0)
        return self.save_table("certificates", pd.DataFrame(rows))

    def dns_plan(self) -> pd.DataFrame:
        """Records external-dns will own on the new cluster, before and after cutover."""
        infra = read_result(self.cfg, "10_provision_infrastructure") or {}
        ip = (infra.get("summary") or {}).get("public_ip", "") or "(VM public IP, known after provisioning)"
        rows = []
        for ing in self.ingresses:
            for rule in get_path(ing, "spec.rules", []) or []:
                host = rule.get("host", "")
                rows.append({"host": host, "record": "A", "value": ip, "txt owner": self.cfg.txt_owner_id,
                             "in zone": host.endswith(self.cfg.domain),
                             "policy until cutover": "upsert-only (never deletes the old cluster's records)"})
        return self.save_table("dns_plan", pd.DataFrame(rows))

    def probes(self) -> pd.DataFrame:
        """HTTP(S) probes through the new ingress (live targets only)."""
        kind = self.target.info().kind
        reason = "directory target: no ingress controller to probe" if kind == "directory" else "dry run"
        return self.save_table("probes", pd.DataFrame([{"host": ref(i).id, "probe": f"not run ({reason})"}
                                                        for i in self.ingresses]))


def start(cfg: Settings) -> Network:
    """Read the cleaned ingresses and TLS Secrets (phase 80)."""
    return Network(cfg)
