"""Credentials that come from the environment, and the Secrets built from them.

Secrets never travel as papermill parameters (papermill copies parameters into every executed
notebook and its metadata, docs/safety.md §4.5): the operator exports them in ``.envrc``
(direnv), the kernel reads them here, and only their *names* and presence ever reach a report.
Error messages name the missing variables and never quote a value.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from k3smig_lib.core.objects import Obj
from k3smig_lib.errors import ParameterError

#: Environment variables k3smig reads, and what each is for (``.envrc.example`` lists the same).
CREDENTIAL_VARS: dict[str, str] = {
    "SCW_ACCESS_KEY": "Scaleway API access key ID (Terraform provider, external-dns)",
    "SCW_SECRET_KEY": "Scaleway API secret key (Terraform provider, external-dns, registry pull password)",
    "SCW_DEFAULT_PROJECT_ID": "Scaleway project that owns the VM, its IP and the registry namespace",
    "SCW_DEFAULT_ORGANIZATION_ID": "Scaleway organization of that project",
    "GRAFANA_TOKEN": "Grafana service-account token used to read and write dashboards",
    "K3SMIG_AGE_RECIPIENT": "optional: age public key that GitOps Secret manifests are sealed to",
    "K3SMIG_AGE_IDENTITY": "optional: age secret key, only to check sealed manifests",
    "K3SMIG_DNS_TSIG_SECRET": "optional: TSIG secret (base64) for zone transfers from dns_server",
    "K3SMIG_RUN_KEY": "set by the runner: key of the Secret fingerprints of this run (never written down)",
}

#: Variables whose values are secret and must never appear in an artifact. Project and
#: organization IDs and the age recipient are identifiers that Terraform plans and sealed files
#: show legitimately, so the leak gate does not look for them.
SECRET_VARS = frozenset(
    {"SCW_ACCESS_KEY", "SCW_SECRET_KEY", "GRAFANA_TOKEN", "K3SMIG_AGE_IDENTITY", "K3SMIG_RUN_KEY",
     "K3SMIG_DNS_TSIG_SECRET"}
)

MANAGED_BY = {"app.kubernetes.io/managed-by": "k3smig"}


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _present(name: str, env: Mapping[str, str]) -> bool:
    return bool(env.get(name, "").strip())


def credentials_status(names: Iterable[str], env: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Say which credential variables are set, for the preflight checklist (never their values).

    Examples:
        >>> credentials_status(["SCW_SECRET_KEY"], {"SCW_SECRET_KEY": "x"})[0]["present"]
        True
    """
    source = _env(env)
    return [
        {"name": name, "purpose": CREDENTIAL_VARS.get(name, ""), "present": _present(name, source)}
        for name in names
    ]


def require_env(
    names: Iterable[str], env: Mapping[str, str] | None = None, *, purpose: str
) -> dict[str, str]:
    """Read required variables, or fail naming every one that is unset or empty.

    A value of only whitespace counts as empty (a stray ``export X= `` in ``.envrc``).

    Args:
        names: the variables needed.
        env: the environment (``os.environ`` by default).
        purpose: what they are needed for, quoted in the error.

    Returns:
        ``{name: value}`` for every name.

    Raises:
        ParameterError: at least one variable is missing; lists them all, never a value.

    Examples:
        >>> require_env(["A"], {"A": "1"}, purpose="a test")
        {'A': '1'}
    """
    source, wanted = _env(env), list(dict.fromkeys(names))
    missing = [name for name in wanted if not _present(name, source)]
    if missing:
        listed = ", ".join(missing)
        raise ParameterError(
            f"{purpose} needs the environment variable(s) {listed}, which are unset or empty",
            fix=f"export {listed} in .envrc (see .envrc.example), run `direnv allow` and restart the kernel",
        )
    return {name: source[name] for name in wanted}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _secret(namespace: str, name: str, kind_type: str, data: Mapping[str, str]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "type": kind_type,
        "data": {key: _b64(value) for key, value in data.items()},
    }


def registry_pull_secret(
    namespace: str,
    *,
    name: str = "scw-registry",
    server: str = "rg.fr-par.scw.cloud",
    env: Mapping[str, str] | None = None,
) -> Obj:
    """The image pull Secret of the Scaleway Container Registry (docs/cleaning-rules.md T5, K16).

    The registry takes the user ``nologin`` and the Scaleway API secret key as password.

    Raises:
        ParameterError: ``SCW_SECRET_KEY`` is unset or empty.

    Examples:
        >>> s = registry_pull_secret("apps", env={"SCW_SECRET_KEY": "k" * 36})
        >>> s["type"], sorted(s["data"])
        ('kubernetes.io/dockerconfigjson', ['.dockerconfigjson'])
    """
    password = require_env(["SCW_SECRET_KEY"], env, purpose="the registry pull Secret")["SCW_SECRET_KEY"]
    entry = {"username": "nologin", "password": password, "auth": _b64(f"nologin:{password}")}
    config = json.dumps({"auths": {server: entry}}, sort_keys=True)
    return _secret(namespace, name, "kubernetes.io/dockerconfigjson", {".dockerconfigjson": config})


def external_dns_secret(
    namespace: str = "external-dns",
    *,
    name: str = "external-dns-scaleway",
    env: Mapping[str, str] | None = None,
) -> Obj:
    """The credentials Secret of external-dns's Scaleway provider (keys named as its env vars).

    ``SCW_DEFAULT_PROJECT_ID`` is added when set; the provider uses it to pick the DNS zones' project.

    Raises:
        ParameterError: ``SCW_ACCESS_KEY`` or ``SCW_SECRET_KEY`` is unset or empty.
    """
    data = require_env(["SCW_ACCESS_KEY", "SCW_SECRET_KEY"], env, purpose="the external-dns Secret")
    project = _env(env).get("SCW_DEFAULT_PROJECT_ID", "").strip()
    if project:
        data["SCW_DEFAULT_PROJECT_ID"] = project
    return _secret(namespace, name, "Opaque", data)


def env_secret_values(env: Mapping[str, str] | None = None) -> set[bytes]:
    """Values of the secret credential variables that are set, for the leak gate.

    Only :data:`SECRET_VARS` count: IDs such as the project ID appear legitimately in plans.
    """
    source = _env(env)
    present = [source[name] for name in SECRET_VARS if _present(name, source)]
    return {v.encode() for v in present} | {v.strip().encode() for v in present}
