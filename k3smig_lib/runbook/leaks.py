"""The run's side of the leak gate: which values to look for, where each came from, and what to do.

The gate (:mod:`k3smig_lib.core.leakgate`) finds values; this module labels them (the Secret, the
environment variable or the key of the run they belong to) so a hit says who must act. A Secret value
that the source *also* stores in plain text outside Secrets (a password pasted into a ConfigMap) is the
user's data shown by the reports: the fix is in the source, not in k3smig. A credential from the
environment was printed by something; a value found nowhere else in the source was displayed by a
k3smig report, which is a k3smig bug.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from k3smig_lib.core import signing
from k3smig_lib.core.agekey import LEGACY_IDENTITY, identity_path
from k3smig_lib.core.config import Settings
from k3smig_lib.core.envsecrets import SECRET_VARS, env_secret_values
from k3smig_lib.core.leakgate import LeakReport, needles, quarantine
from k3smig_lib.core.objects import Obj, canonical_json, ref
from k3smig_lib.core.secrets import secret_values
from k3smig_lib.errors import SecretLeakError

RUN_KEY_LABEL = "k3smig's own run key"
#: Characters a text is indexed by when secret values are removed from it (as the gate anchors on 8 bytes).
_ANCHOR = 8


def key_values(cfg: Settings, run_key: str) -> dict[bytes, str]:
    """Keys of the run itself: the HMAC run key, the environment's age identity and the run signing key."""
    values = {run_key.encode(): RUN_KEY_LABEL}
    key_file = signing.key_path()
    if key_file.is_file():  # the body of the PEM: the private key in any report would show as this text
        body = "".join(line for line in key_file.read_text().splitlines() if not line.startswith("-----"))
        values[body.encode()] = "k3smig's run signing key"
    for identity in (identity_path(cfg.environment), cfg.target_path() / LEGACY_IDENTITY):
        if identity.is_file():
            values[identity.read_text().strip().encode()] = f"the age identity of environment {cfg.environment}"
    return values


def env_values() -> dict[bytes, str]:
    """Credential values from the environment, labelled with their variable."""
    out: dict[bytes, str] = {}
    for name in SECRET_VARS:
        for value in env_secret_values({name: os.environ.get(name, "")}):
            out[value] = f"environment variable {name}"
    return out


def source_values(objects: Iterable[Obj]) -> dict[bytes, str]:
    """Values of every source Secret, labelled ``Secret <namespace>/<name>``."""
    out: dict[bytes, str] = {}
    for obj in objects:
        if obj.get("kind") == "Secret":
            r = ref(obj)
            for value in secret_values([obj]):
                out.setdefault(value, f"Secret {r.namespace}/{r.name}")
    return out


class Redactor:
    """Removes every secret value of the run from a text, in every form the leak gate looks for.

    A failed cell's message and traceback are the one text the runner copies into its own records, and an
    exception can quote a credential it was handed (a rejected token, an API body). Each value, in each of
    the gate's forms (raw, base64, URL-, JSON-, HTML-encoded, ``repr``), becomes ``[secret value removed:
    <label>]``, so the record still says whose value it was. Values shorter than ``min_length`` are left, as
    the gate leaves them (too short to tell from ordinary text). The gate still scans every file afterwards.

    The forms are computed once (a source with thousands of Secrets has tens of thousands of them) and
    looked up by their first :data:`_ANCHOR` characters among the text's own windows, so a traceback is
    searched in milliseconds.

    Examples:
        >>> Redactor({b"s3cr3t-token-42": "environment variable GRAFANA_TOKEN"})("rejected: s3cr3t-token-42")[0]
        'rejected: [secret value removed: environment variable GRAFANA_TOKEN]'
        >>> Redactor({b"s3cr3t-token-42": "GRAFANA_TOKEN"})("rejected: czNjcjN0LXRva2VuLTQy")
        ('rejected: [secret value removed: GRAFANA_TOKEN]', ['GRAFANA_TOKEN'])
    """

    def __init__(self, values: Mapping[bytes, str], *, min_length: int = 8) -> None:
        self.anchored: dict[str, dict[str, str]] = {}
        self.short: dict[str, str] = {}  # forms of fewer characters than an anchor (multi-byte UTF-8 values)
        for value, label in values.items():
            if len(value) < max(min_length, 1):
                continue
            for needle in needles(value).values():
                try:
                    form = needle.decode()
                except UnicodeDecodeError:
                    continue
                if len(form) >= _ANCHOR:
                    self.anchored.setdefault(form[:_ANCHOR], {}).setdefault(form, label)
                else:
                    self.short.setdefault(form, label)

    def __call__(self, text: str) -> tuple[str, list[str]]:
        """``text`` with every value removed, and the labels of the values found (sorted, never a value)."""
        windows = {text[i:i + _ANCHOR] for i in range(len(text) - _ANCHOR + 1)} & self.anchored.keys()
        found = {form: label for anchor in windows for form, label in self.anchored[anchor].items() if form in text}
        found |= {form: label for form, label in self.short.items() if form in text}
        for form in sorted(found, key=len, reverse=True):  # a longer form first: "base64" before its embedded core
            text = text.replace(form, f"[secret value removed: {found[form]}]")
        return text, sorted(set(found.values()))


def plain_copies(value: bytes, objects: Iterable[Obj]) -> list[str]:
    """Non-Secret source objects that hold ``value`` in plain text (``ConfigMap shop/settings``)."""
    try:
        text = value.decode()
    except UnicodeDecodeError:
        return []
    needle = canonical_json(text)[1:-1].decode()  # as it appears inside a JSON string
    return [f"{r.kind} {r.namespace}/{r.name}" if r.namespace else f"{r.kind} {r.name}"
            for obj in objects if obj.get("kind") != "Secret"
            for r in [ref(obj)] if needle in canonical_json(obj).decode()]


def _advice(report: LeakReport, values: Mapping[bytes, str], objects: list[Obj]) -> tuple[str, str]:
    """(where the values came from, what to do), for the hits of ``report``."""
    labels = sorted({h.source for h in report.hits if h.source})
    by_label: dict[str, list[bytes]] = {}
    for value, label in values.items():
        by_label.setdefault(label, []).append(value)
    copies = sorted({c for label in labels if label.startswith("Secret ") for v in by_label.get(label, [])
                     for c in plain_copies(v, objects)})
    origin = "values of " + ", ".join(labels) if labels else "secret values"
    if copies:
        return (f"{origin}, also stored in plain text in {', '.join(copies[:3])} of the source (user data the "
                "reports show)",
                f"move the value out of {copies[0]} into a Secret (referenced with secretKeyRef) or exclude that "
                "namespace, then start a new run; this is a fix in the source, not in k3smig")
    if any(label.startswith("environment variable") for label in labels):
        return (origin, "something printed the environment: find the cell or tool that shows it, and never pass "
                "credentials as arguments; then start a new run")
    return (origin, "a k3smig report displayed a secret value: report it as a k3smig bug with the file names "
            "(never the values), and do not share the quarantined run")


def gate(run_dir: Path, report: LeakReport, values: Mapping[bytes, str], objects: list[Obj]) -> Path:
    """Quarantine a run with hits and raise; return ``run_dir`` unchanged when there is none.

    Raises:
        SecretLeakError: says where the values came from, which files hold them, and who must act.
    """
    if report.ok:
        return run_dir
    moved = quarantine(run_dir, report=report)
    where, fix = _advice(report, values, objects)
    files = sorted({h.file for h in report.hits})
    raise SecretLeakError(f"{where}; found in {len(files)} file(s) of the run: {', '.join(files)}",
                          fix=f"{fix} (the run was quarantined at {moved}; QUARANTINED.txt lists the files)")
