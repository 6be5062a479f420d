"""Run settings: one frozen, typed model for every parameter a notebook or parameters file may set.

Papermill copies every parameter into each executed notebook and its metadata, so this model is also
the gate that keeps secrets out: unknown or misspelled keys fail with a "did you mean" fix, and
secret-looking names or values are refused before anything runs (docs/safety.md cases 3 and 29).
Defaults are safe: plan only, the bundled example as source, a directory as target.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from k3smig_lib.core.yamlio import MAX_PARAMETERS_BYTES, load_yaml, read_text
from k3smig_lib.errors import ParameterError

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
#: Environment of every process k3smig starts: Terraform/OpenTofu skip their update check (no network call).
NO_PHONE_HOME = {"CHECKPOINT_DISABLE": "1"}
#: Set by ``k3smig run`` in every kernel: no widgets, plain progress lines (read by :mod:`k3smig_lib.show`).
BATCH_ENV = "K3SMIG_BATCH"
BUNDLED_EXAMPLE = PACKAGE_ROOT / "examples" / "prod-cluster"
#: Volume helper image: GNU tar, find and coreutils, small and public. Pin a digest, or point at a mirror.
DEFAULT_HELPER_IMAGE = "docker.io/library/debian:bookworm-slim"

_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SECRET_NAME = re.compile(r"(pass(word|wd)?|pwd|secret|token|api[_-]?key|private[_-]?key|credential|bearer)", re.I)
_SECRET_VALUE = re.compile(
    r"(-----BEGIN [A-Z ]*PRIVATE KEY-----|AGE-SECRET-KEY-1|\bAKIA[0-9A-Z]{16}\b|\beyJ[\w-]{10,}\.[\w-]{10,}\."
    r"|\bSCW[A-Z0-9]{17}\b"  # Scaleway access key
    r"|\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"  # Scaleway secret keys: UUIDs
    r"|\b(ghp|gho|ghu|ghs|ghr)_\w{20,}|\bgithub_pat_\w{20,}"  # GitHub tokens
    r"|\bgl(pat|rt|dt|ptt|cbt|oas|ft|imt|agent)-[\w-]{16,}"  # GitLab tokens
    r"|\bxox[abposr]-[\w-]{10,}|hooks\.slack\.com/(services|workflows|triggers)/\S+)"  # Slack
)
#: Names that look secret-ish but are not (they hold public keys or secret *names*).
_ALLOWED_SECRETISH = {"age_recipient", "registry_pull_secret", "keep_helm_releases"}


class Settings(BaseModel):
    """Every parameter of a run, with its unit, default and reason.

    Examples:
        >>> Settings(environment="ci").apply
        False
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- run ---------------------------------------------------------------------------------
    environment: str = Field("demo", description="environment name; part of the run id")
    apply: bool = Field(False, description="false: plan only: nothing is written to the target (server dry-run)")
    provision: bool = Field(False, description="true: tofu apply + ansible on the real VM; false: plan/check only")
    run_dir: str = Field("", description="run folder; empty: runs/interactive-<environment>")
    # --- source ------------------------------------------------------------------------------
    source_kind: Literal["snapshot", "cluster"] = Field("snapshot", description="where objects come from")
    source_snapshot: str = Field("", description="snapshot folder; empty: the bundled example cluster")
    source_kubeconfig: str = Field("", description="kubeconfig of the source cluster (cluster mode)")
    source_context: str = Field("", description="explicit source context; never the current-context")
    export_dir: str = Field("", description="snapshot copy of a live export (holds Secrets); empty: exports/<env>")
    namespaces: list[str] = Field(default_factory=list, description="namespaces to migrate; empty: all")
    exclude_namespaces: list[str] = Field(default_factory=list, description="namespaces never migrated")
    # --- target ------------------------------------------------------------------------------
    target_kind: Literal["directory", "cluster"] = Field("directory", description="where objects go")
    target_dir: str = Field("", description="GitOps tree + volumes; empty: targets/<environment>")
    target_kubeconfig: str = Field("", description="kubeconfig of the K3s target (cluster mode)")
    target_context: str = Field("", description="explicit target context")
    existing: Literal["fail", "update"] = Field("fail", description="policy for objects that exist and differ")
    # --- K3s remaps --------------------------------------------------------------------------
    storage_class: str = Field("local-path", description="target StorageClass (K3s default)")
    ingress_class: str = Field("nginx", description="target IngressClass (Traefik's NGINX provider serves it)")
    ingress_controller: Literal["traefik", "ingress-nginx"] = Field(
        "traefik", description="K3s's bundled Traefik with its NGINX provider, or ingress-nginx (unmaintained)")
    registry_rewrites: dict[str, str] = Field(default_factory=dict, description="image prefix -> new prefix")
    registry_pull_secret: str = Field("scw-registry", description="name of the pull Secret built from env")
    registry_server: str = Field("rg.fr-par.scw.cloud", description="Scaleway Container Registry endpoint")
    manage_dns: bool = Field(True, description="live target: create the external-dns credentials Secret from env")
    keep_helm_releases: bool = Field(False, description="copy sh.helm.release.v1.* Secrets (KEEP5)")
    age_recipient: str = Field("", description="age public key; Secrets in the target tree are SOPS-encrypted")
    require_promtool: bool = Field(False, description="fail when promtool is missing instead of a structural check")
    # --- volume data -------------------------------------------------------------------------
    quiesce: bool = Field(True, description="live source: writers scaled to 0 for the final copy; false: one copy "
                          "while running")
    include_loki: bool = Field(True, description="move Loki's volumes; false: Loki starts with no logs on the target")
    volume_helper_image: str = Field(DEFAULT_HELPER_IMAGE, description="helper pod image (needs GNU tar); pin a "
                                     "digest")
    volume_size_margin: float = Field(0.1, ge=0, description="archive bytes allowed above a claim's size (0.1: 10 %)")
    # --- infrastructure ----------------------------------------------------------------------
    vm_name: str = Field("k3smig", description="Scaleway instance name")
    zone: str = Field("fr-par-1", description="Scaleway zone")
    instance_type: str = Field("GP1-XS", description="Scaleway instance type (sizes: README)")
    vm_cpu: float = Field(4.0, description="vCPUs of the instance type, for the capacity check")
    vm_memory_gib: float = Field(8.0, description="memory of the VM in GiB, for the capacity check")
    disk_gb: int = Field(80, description="root volume size in GB (local-path ignores PVC sizes)")
    admin_cidr: str = Field("203.0.113.0/24", description="CIDR allowed to reach SSH and 6443")
    k3s_version: str = Field("v1.33.4+k3s1", description="pinned K3s release")
    domain: str = Field("example.org", description="DNS zone managed by external-dns")
    acme_email: str = Field("ops@example.org", description="Let's Encrypt account email")
    letsencrypt_env: Literal["staging", "production"] = Field("staging", description="ACME endpoint")
    txt_owner_id: str = Field("k3smig", description="external-dns TXT owner id of the new cluster")
    # --- cutover -----------------------------------------------------------------------------
    cutover: bool = Field(False, description="with apply: switch DNS to the target on go; false: plan and "
                          "record the go/no-go only")
    ingress_address: str = Field("", description="public address of the target ingress (the VM IP) published in "
                                 "DNS; empty: phase 10's output")
    source_txt_owner_id: str = Field("default", description="external-dns TXT owner id of the source cluster")
    external_dns: str = Field("external-dns/external-dns", description="namespace/name of the external-dns "
                              "Deployment on both clusters")
    dns_server: str = Field("", description="host:port of the zone's authoritative server; empty: DNS not read")
    dns_tsig_keyname: str = Field("", description="TSIG key for zone transfers (value: env K3SMIG_DNS_TSIG_SECRET)")
    cutover_ttl: int = Field(60, ge=1, description="TTL (s) the moved records must have before cutover")
    dns_wait_seconds: float = Field(180.0, gt=0, description="how long the cutover waits for DNS to converge")
    probe_address: str = Field("", description="ip:port the target HTTPS probes connect to; empty: "
                               "ingress_address:443")
    source_probe_address: str = Field("", description="ip:port of the source ingress; empty: its DNS address:443")
    probe_paths: dict[str, str] = Field(default_factory=dict, description="host -> path probed and compared "
                                        "(default /)")
    as_of: str = Field("", description="UTC time (ISO 8601) certificate expiry is judged at; empty: now")
    server_count: int = Field(1, description="K3s servers: 1 (one VM, SQLite) or 3 (HA, embedded etcd)")
    agent_count: int = Field(0, ge=0, le=10, description="K3s agents (workers) joined to the servers")
    lb_enabled: bool = Field(False, description="Scaleway load balancer in front of the ingress")
    backup_bucket: str = Field("", description="Object Storage bucket of the backups (globally unique; phase 20 "
                               "needs it)")
    backup_retention: int = Field(14, ge=1, description="backup snapshots kept per node and kind")

    @field_validator("namespaces", "exclude_namespaces")
    @classmethod
    def _dns1123(cls, value: list[str]) -> list[str]:
        for ns in value:
            if not _DNS1123.match(ns):
                raise ValueError(f"namespace {ns!r} is not a DNS-1123 label (lowercase letters, digits, '-')")
        return value

    @field_validator("server_count")
    @classmethod
    def _quorum(cls, value: int) -> int:
        if value not in (1, 3):
            raise ValueError("server_count must be 1 (one VM) or 3 (embedded etcd needs an odd quorum)")
        return value

    @field_validator("environment", "vm_name", "txt_owner_id", "source_txt_owner_id")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not _DNS1123.match(value):
            raise ValueError(f"{value!r} must be a DNS-1123 label (lowercase letters, digits, '-')")
        return value

    # --- derived paths -----------------------------------------------------------------------
    def snapshot_path(self) -> Path:
        """Source snapshot folder (the bundled example when unset)."""
        return Path(self.source_snapshot).expanduser().resolve() if self.source_snapshot else BUNDLED_EXAMPLE

    def run_path(self) -> Path:
        """Run folder; a stable interactive folder when the notebook runs outside the runner."""
        if self.run_dir:
            return Path(self.run_dir).expanduser().resolve()
        return Path.cwd().resolve() / "runs" / f"interactive-{self.environment}"

    def export_path(self) -> Path:
        """Snapshot copy of a live export: outside the run folder, because it holds Secret values."""
        if self.export_dir:
            return Path(self.export_dir).expanduser().resolve()
        return Path.cwd().resolve() / "exports" / self.environment

    def target_path(self) -> Path:
        """Directory target (never inside the run folder: volume data is not audit material)."""
        if self.target_dir:
            return Path(self.target_dir).expanduser().resolve()
        return Path.cwd().resolve() / "targets" / self.environment


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(c / len(text) * math.log2(c / len(text)) for c in counts.values())


def looks_secret(value: str) -> bool:
    """True when a string value looks like a credential (key material, tokens, long random strings).

    Examples:
        >>> looks_secret("fr-par-1"), looks_secret("AGE-SECRET-KEY-1QQQ")
        (False, True)
    """
    if _SECRET_VALUE.search(value):
        return True
    compact = value.strip()
    if len(compact) >= 32 and not re.search(r"[\s/:.@]", compact):
        return _entropy(compact) > 3.3 and not compact.startswith("age1")
    return False


def _strings(value: Any) -> Iterator[tuple[str, str]]:
    """Every string inside a parameter value, labelled ``value`` or ``key`` (mapping keys count too)."""
    if isinstance(value, str):
        yield "value", value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from (("key", k) for _, k in _strings(key))
            yield from _strings(item)
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from _strings(item)


def _check_secretish(key: str, value: Any) -> None:
    if key not in _ALLOWED_SECRETISH and _SECRET_NAME.search(key):
        raise ParameterError(
            f"parameter {key!r} looks like a secret; papermill would write it into every executed notebook",
            fix="put the secret in an environment variable (.envrc) and remove it from the parameters",
        )
    for where, text in _strings(value):
        if looks_secret(text):
            what = "the value" if where == "value" else "a key"
            raise ParameterError(
                f"{what} of parameter {key!r} looks like a secret (it is not shown here); papermill would "
                "persist it in the executed notebooks and shell history may already hold it",
                fix="pass credentials through environment variables (.envrc), never as parameters",
            )


def check_parameters(params: Mapping[str, Any], *, source: str = "parameters") -> None:
    """Refuse unknown, misspelled and secret-looking parameters before anything runs.

    Args:
        params: parameter names and values (a parameters file or notebook parameters).
        source: where they come from, for the message.

    Raises:
        ParameterError: naming the key and how to fix it; every unknown key at once.
    """
    known = set(Settings.model_fields)
    unknown: list[str] = []
    for key, value in params.items():
        _check_secretish(key, value)
        if key not in known:
            unknown.append(key)
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hints.append(f"rename {key!r} to {close[0]!r}" if close else f"remove {key!r}")
    if len(unknown) == 1:
        hint = hints[0].replace(f" {unknown[0]!r}", " it", 1)
        if not hint.startswith("rename"):
            hint += " (see the parameters reference in README.md)"
        raise ParameterError(f"unknown parameter {unknown[0]!r} in {source}", fix=hint)
    raise ParameterError(f"{len(unknown)} unknown parameters in {source}: {', '.join(map(repr, unknown))}",
                         fix="; ".join(hints) + " (see the parameters reference in README.md)")


def load(**params: Any) -> Settings:
    """Build the frozen settings of a notebook from its parameters.

    Args:
        **params: the notebook's parameters, exactly as its parameters cell declares them.

    Returns:
        The validated settings.

    Raises:
        ParameterError: unknown, secret-looking or invalid parameters, with the fix.

    Examples:
        >>> load(environment="demo", apply=False).target_kind
        'directory'
    """
    check_parameters(params, source="notebook parameters")
    try:
        return Settings(**params)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ParameterError(f"parameter {key!r}: {first['msg']}", fix="correct its value") from None


def read_parameters_file(path: Path) -> dict[str, Any]:
    """Read and check a ``parameters/<env>.yaml`` file (dates stay strings, as papermill's loader does).

    Raises:
        ParameterError: unreadable or non-UTF-8 file, invalid YAML, duplicate keys, not a mapping, unknown or
            secret-looking keys.
        LimitError: the file is larger than :data:`~k3smig_lib.core.yamlio.MAX_PARAMETERS_BYTES`.
    """
    text = read_text(path, error=ParameterError, limit=MAX_PARAMETERS_BYTES, what="parameters file")
    data = load_yaml(text, str(path), error=ParameterError)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParameterError(f"{path} must be a mapping of parameter: value", fix="write one 'name: value' per line")
    check_parameters(data, source=str(path))
    try:
        Settings(**data)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ParameterError(f"{path}: parameter {key!r}: {first['msg']}", fix="correct its value") from None
    return dict(data)
