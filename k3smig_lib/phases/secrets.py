"""Phase 50 · migrate Secrets: skip set with reasons, platform Secrets from the environment, fingerprints.

Values never leave memory: the ledger shows names, types, key names, lengths and keyed HMAC fingerprints
(key per run, from ``K3SMIG_RUN_KEY``), and the target is checked by comparing fingerprints per key.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from k3smig_lib.backends.base import Target
from k3smig_lib.core.config import Settings
from k3smig_lib.core.envsecrets import credentials_status, external_dns_secret, registry_pull_secret
from k3smig_lib.core.objects import Obj, annotations_of, ref
from k3smig_lib.core.sealing import VALUES_OMITTED
from k3smig_lib.core.secrets import Fingerprinter, compare_ledgers, ledger_rows
from k3smig_lib.errors import ParameterError
from k3smig_lib.phases._base import PhaseRun, step
from k3smig_lib.phases.context import cleaned, open_source, open_target, selected_objects
from k3smig_lib.phases.export import read_cleaned

PHASE = "50_migrate_secrets"


def migrated_secrets(cfg: Settings) -> list[Obj]:
    """Cleaned Secrets that the cleaner keeps (skip set and whiteouts applied)."""
    report = cleaned(cfg, open_source(cfg))
    return [c.cleaned for c in report.kept() if c.cleaned is not None and c.cleaned.get("kind") == "Secret"]


def source_secrets(cfg: Settings) -> list[Obj]:
    """Every selected Secret of the source, as exported."""
    return [o for o in selected_objects(cfg, open_source(cfg)) if o.get("kind") == "Secret"]


NO_DATA = "no data migrated (the cleaner removed it; the target regenerates it)"
GOOD = ("equal", "key present (values not stored)", NO_DATA)


def _keys(secret: Obj) -> list[str]:
    return sorted(set(secret.get("data") or {}) | set(secret.get("stringData") or {}))


def _rows(sid: str, keys: list[str], status: str) -> list[dict[str, object]]:
    """One row per key (one row with key "" for a Secret without keys), so every key is counted once."""
    _, ns, name = sid.split("/", 2)
    return [{"namespace": ns, "name": name, "key": key, "status": status} for key in keys or [""]]


def fingerprint_comparison(target: Target, to_migrate: list[Obj], fp: Fingerprinter,
                           originals: list[Obj] | None = None) -> list[dict[str, object]]:
    """Compare source and target Secrets key by key: one row for every key of every Secret that migrates.

    Fingerprints where the target holds values (plain or unsealed); key names only where values were
    deliberately omitted (no recipient); a sealed Secret without an identity to open it is reported as
    not verifiable rather than assumed equal. Keys the cleaner removed before migrating (a
    service-account token's data, which the target's controller fills) get a row of their own, so the
    keys fingerprinted on the source always add up: compared + without data.
    """
    wanted = {ref(s).id: s for s in to_migrate}
    on_target = {ref(o).id: o for o in target.list_objects() if o.get("kind") == "Secret" and ref(o).id in wanted}
    omitted = {i for i, o in on_target.items() if VALUES_OMITTED in annotations_of(o)}
    sealed = {i for i, o in on_target.items() if "sops" in o}
    readable = [o for i, o in on_target.items() if i not in omitted | sealed]
    src = ledger_rows([s for i, s in wanted.items() if i in on_target and i not in omitted | sealed], fp,
                      side="source", keep_helm_releases=True)
    rows: list[dict[str, object]] = list(compare_ledgers(src, ledger_rows(readable, fp, side="target",
                                                                          keep_helm_releases=True)))
    for sid in sorted(omitted):
        present = set(on_target[sid].get("data") or {})
        rows += [r for key in _keys(wanted[sid]) or [""]
                 for r in _rows(sid, [key], "key present (values not stored)" if key in present or not key
                                else "missing on target")]
    for sid in sorted(sealed):
        rows += _rows(sid, _keys(wanted[sid]), "sealed: not verifiable without K3SMIG_AGE_IDENTITY")
    for sid in sorted(set(wanted) - set(on_target)):
        rows += _rows(sid, _keys(wanted[sid]), "missing on target")
    for original in originals or []:
        sid = ref(original).id
        if sid in wanted:
            removed = sorted(set(_keys(original)) - set(_keys(wanted[sid])))
            rows += [{**r, "detail": "the key's value was not copied"} for r in _rows(sid, removed, NO_DATA)
                     if removed]
    return rows


class Secrets(PhaseRun):
    """State of the secrets notebook."""

    def __init__(self, cfg: Settings) -> None:
        super().__init__(cfg=cfg, phase=PHASE)
        self.fp = Fingerprinter.from_env()
        self.target: Target = open_target(cfg)
        self.to_migrate = migrated_secrets(cfg)
        self.platform: list[Obj] = []

    def ledger(self) -> pd.DataFrame:
        """Source ledger: one row per Secret key, migrated or skipped with the reason."""
        rows = ledger_rows(source_secrets(self.cfg), self.fp, side="source",
                           keep_helm_releases=self.cfg.keep_helm_releases)
        kept = {ref(s).id for s in self.to_migrate}
        for row in rows:  # the cleaner is the authority on what travels (e.g. KEEP4 TLS Secrets)
            rid = f"Secret/{row['namespace']}/{row['name']}"
            if rid in kept and row["action"] != "migrate":
                row["action"], row["reason"] = "migrate", "kept by the cleaner (KEEP rule)"
            elif rid not in kept and row["action"] == "migrate":
                row["action"], row["reason"] = "skip", "dropped by the cleaner (see phase 40)"
        frame = pd.DataFrame(rows)
        migrating = frame[(frame["action"] == "migrate") & (frame["key"] != "")] if not frame.empty else frame
        if self.fp.ephemeral:
            self.warnings.append("fingerprint key is per process (run through `k3smig run` to compare across phases)")
        self.summary["secrets migrated"] = len(self.to_migrate)
        self.summary["keys fingerprinted"] = len(migrating)  # keys of the Secrets that migrate
        self.summary["keys skipped"] = int((frame["action"] == "skip").sum()) if not frame.empty else 0
        return self.save_table("ledger_source", frame)

    @step
    def platform_secrets(self) -> pd.DataFrame:
        """Registry pull Secret and external-dns credentials, built from environment variables."""
        rows = []
        need_pull = bool(self.cfg.registry_rewrites)
        need_dns = self.cfg.target_kind == "cluster" and self.cfg.manage_dns
        builders: list[tuple[str, bool, Callable[[], list[Obj]]]] = [
            ("registry pull secret", need_pull, self._pull_secrets),
            ("external-dns credentials", need_dns, lambda: [external_dns_secret()]),
        ]
        for what, needed, build in builders:
            if what.startswith("external-dns") and not self.cfg.manage_dns:
                rows.append({"secret": what, "built": False, "needed": False, "detail": "manage_dns is false"})
                continue
            try:
                built = build()
            except ParameterError as e:
                if needed:
                    self.errors.append(f"{what}: {e}")
                rows.append({"secret": what, "built": False, "needed": needed, "detail": e.message})
                continue
            self.platform.extend(built)
            rows.append({"secret": what, "built": True, "needed": needed,
                         "detail": ", ".join(ref(s).id for s in built)})
        return self.save_table("platform_secrets", pd.DataFrame(rows))

    def _namespaces(self) -> list[Obj]:
        """Cleaned Namespaces of the Secrets written here: apply order puts namespaces before Secrets."""
        wanted = {ref(s).namespace for s in self.platform + self.to_migrate}
        return [o for o in read_cleaned(self.cfg) if o.get("kind") == "Namespace" and ref(o).name in wanted]

    def _pull_secrets(self) -> list[Obj]:
        namespaces = sorted({ref(s).namespace for s in self.to_migrate if ref(s).namespace})
        return [registry_pull_secret(ns, name=self.cfg.registry_pull_secret, server=self.cfg.registry_server)
                for ns in namespaces]

    def credentials(self) -> pd.DataFrame:
        """Which credential variables are set (names only, never values)."""
        return pd.DataFrame(credentials_status(["SCW_ACCESS_KEY", "SCW_SECRET_KEY", "SCW_DEFAULT_PROJECT_ID"]))

    @step
    def apply(self) -> pd.DataFrame:
        """Write the Secrets (and the namespaces they live in, first) to the target; in dry run, only plan."""
        self.platform_secrets()  # built from the environment: written with the migrated ones
        result = self.target.apply(self._namespaces() + self.platform + self.to_migrate, dry_run=not self.cfg.apply,
                                   existing=self.cfg.existing)
        frame = pd.DataFrame([vars(i) for i in result.items]).drop(columns=["sha256"], errors="ignore")
        conflicts = result.count("conflict")
        if conflicts:
            self.errors.append(f"{conflicts} Secret(s) conflict with the target (see apply table)")
        secrets = [i for i in result.items if i.ref_id.startswith("Secret/")]
        changed = sum(1 for i in secrets if i.action in ("create", "update"))
        namespaces = sum(1 for i in result.items if i.ref_id.startswith("Namespace/") and i.action == "create")
        self.summary.update({"secrets written" if self.cfg.apply else "secrets planned": changed,
                             "unchanged": sum(1 for i in secrets if i.action == "unchanged"), "conflicts": conflicts,
                             "namespaces created" if self.cfg.apply else "namespaces planned": namespaces})
        return self.save_table("apply", frame)

    def verify(self) -> pd.DataFrame:
        """Compare source and target fingerprints key by key."""
        self.apply()  # what is compared is what apply wrote
        if not self.cfg.apply:
            return pd.DataFrame([{"check": "target fingerprints", "result": "not run: dry run"}])
        frame = pd.DataFrame(fingerprint_comparison(self.target, self.to_migrate, self.fp, source_secrets(self.cfg)))
        bad = frame[~frame["status"].isin(GOOD)] if not frame.empty else frame
        if len(bad):
            self.errors.append(f"{len(bad)} secret key(s) differ or are missing on the target")
        keyed = frame[frame["key"] != ""] if not frame.empty else frame
        self.summary["keys compared"] = int((keyed["status"] != NO_DATA).sum()) if not keyed.empty else 0
        self.summary["keys without data"] = int((keyed["status"] == NO_DATA).sum()) if not keyed.empty else 0
        self.summary["keys equal on target"] = int((keyed["status"] == "equal").sum()) if not keyed.empty else 0
        return self.save_table("ledger_compare", frame)


def start(cfg: Settings) -> Secrets:
    """Read the source Secrets and open the target (phase 50)."""
    return Secrets(cfg)
