"""Kubernetes' own naming rules, checked on every object a source yields, before any name becomes a path.

Object names, namespaces, claim names and ConfigMap/Secret keys become file and folder names in the
target tree, the run folder and the cleaner's output. An API server would never have accepted
``../x`` as a name, so an export that holds one was edited or crafted: it is refused when the source
is read, with the object and the file named, instead of being written next to the target (issue 9).
The rules are the API server's (``k8s.io/apimachinery/pkg/util/validation``): most kinds need a
DNS-1123 subdomain, Namespaces and Services a DNS-1123 label, RBAC objects (and OpenShift's user and
OAuth objects) a path segment name (``system:image-pullers`` is valid), and keys the ConfigMap key rule.

:mod:`k3smig_lib.core.fsafe` refuses unsafe paths again when writing: this module gives the early,
precise error; that one is the guarantee.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

from k3smig_lib.core.objects import Obj
from k3smig_lib.errors import InvalidNameError, SourceError

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
CONFIG_MAP_KEY_MAX = 253
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_RE = re.compile(rf"^{_LABEL}$")
_SUBDOMAIN_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")
_KIND_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,62}$")
_VERSION_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

#: Kinds whose names are DNS-1123 labels.
LABEL_KINDS = frozenset({"Namespace", "Service"})
#: Kinds whose names only have to be path segments (no ``/``, ``%``, not ``.`` or ``..``).
PATH_SEGMENT_KINDS = frozenset(
    {
        "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding",  # rbac and authorization.openshift.io
        "User", "Identity", "Group", "UserIdentityMapping",  # user.openshift.io
        "OAuthAccessToken", "OAuthAuthorizeToken", "OAuthClientAuthorization", "UserOAuthAccessToken",
        "APIService",  # named "<version>.<group>": the core group's is "v1."
    }
)
#: Object fields whose keys become file names when mounted (and, in phase 70, on disk).
KEYED_FIELDS = {"ConfigMap": ("data", "binaryData"), "Secret": ("data", "stringData")}


def is_dns1123_label(value: str) -> bool:
    """True for a DNS-1123 label (``web-1``): lowercase alphanumerics and ``-``, at most 63 characters.

    Examples:
        >>> is_dns1123_label("web-1"), is_dns1123_label("Web"), is_dns1123_label("a.b")
        (True, False, False)
    """
    return len(value) <= DNS1123_LABEL_MAX and bool(_LABEL_RE.match(value))


def is_dns1123_subdomain(value: str) -> bool:
    """True for a DNS-1123 subdomain (``web.v1``): labels joined by dots, at most 253 characters.

    Examples:
        >>> is_dns1123_subdomain("cm.app-1"), is_dns1123_subdomain("../x")
        (True, False)
    """
    return len(value) <= DNS1123_SUBDOMAIN_MAX and bool(_SUBDOMAIN_RE.match(value))


def is_path_segment(value: str) -> bool:
    """True for a path segment name (RBAC): not empty, ``.`` or ``..``, without ``/`` or ``%``.

    Examples:
        >>> is_path_segment("system:image-pullers"), is_path_segment(".."), is_path_segment("a/b")
        (True, False, False)
    """
    return value not in ("", ".", "..") and "/" not in value and "%" not in value


def config_map_key_problem(key: str) -> str:
    """Why ``key`` is not a valid ConfigMap/Secret key, or ``""`` when it is.

    Examples:
        >>> config_map_key_problem("app.ini"), config_map_key_problem("../x")
        ('', "must consist of alphanumerics, '-', '_' or '.'")
    """
    if not key or len(key) > CONFIG_MAP_KEY_MAX:
        return f"must have 1 to {CONFIG_MAP_KEY_MAX} characters"
    if not _KEY_RE.match(key):
        return "must consist of alphanumerics, '-', '_' or '.'"
    if key in (".", "..") or key.startswith(".."):
        return "must not be '.' or '..' or start with '..'"
    return ""


def _name_rule(kind: str) -> tuple[Callable[[str], bool], str]:
    if kind in LABEL_KINDS:
        return is_dns1123_label, (f"a DNS-1123 label (lowercase letters, digits and '-', at most "
                                  f"{DNS1123_LABEL_MAX} characters)")
    if kind in PATH_SEGMENT_KINDS:
        return is_path_segment, "a path segment name (not '.' or '..', without '/' or '%')"
    return is_dns1123_subdomain, (f"a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most "
                                  f"{DNS1123_SUBDOMAIN_MAX} characters)")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 70 else text[:60] + "…'"


def _identity_problems(obj: Obj) -> list[str]:
    kind, version = obj.get("kind"), obj.get("apiVersion", "")
    problems = []
    if not isinstance(kind, str) or not _KIND_RE.match(kind):
        problems.append(f"kind {_shown(kind)} is not a Kubernetes kind (letters and digits, starting with a letter)")
    if not isinstance(version, str):
        problems.append(f"apiVersion {_shown(version)} is not a string")
    elif version:
        group, _, ver = version.rpartition("/")
        if (group and not is_dns1123_subdomain(group)) or not _VERSION_RE.match(ver):
            problems.append(f"apiVersion {_shown(version)} is not 'group/version' or 'version'")
    return problems


def _metadata_problems(obj: Obj, kind: str) -> list[str]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return ["metadata is missing or not a mapping"]
    name, namespace = meta.get("name"), meta.get("namespace")
    problems = []
    if not name:
        generated = f" (it only has generateName {_shown(meta['generateName'])})" if meta.get("generateName") else ""
        problems.append(f"metadata.name is missing{generated}: every object needs a name, which also becomes "
                        "its file name")
    else:
        valid, rule = _name_rule(kind)
        if not isinstance(name, str) or not valid(name):
            problems.append(f"metadata.name {_shown(name)} is not {rule}")
    if namespace not in (None, "") and (not isinstance(namespace, str) or not is_dns1123_label(namespace)):
        problems.append(f"metadata.namespace {_shown(namespace)} is not a DNS-1123 label")
    return problems


def _key_problems(obj: Obj, kind: str) -> list[str]:
    problems = []
    for field in KEYED_FIELDS.get(kind, ()):
        data = obj.get(field)
        if data is None:
            continue
        if not isinstance(data, dict):
            problems.append(f"{field} is not a mapping of key: value")
            continue
        for key in data:
            why = config_map_key_problem(key) if isinstance(key, str) else "must be a string"
            if why:
                problems.append(f"{field} key {_shown(key)} {why}")
    return problems


def object_problems(obj: Obj) -> list[str]:
    """Every naming problem of one object (empty when the API server would accept its names).

    Examples:
        >>> object_problems({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "../x"}})[0][:45]
        "metadata.name '../x' is not a DNS-1123 subdom"
    """
    problems = _identity_problems(obj)
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) else ""
    problems += _metadata_problems(obj, str(kind))
    if isinstance(obj.get("metadata"), dict):
        problems += _key_problems(obj, str(kind))
    return problems


def _describe(obj: Obj) -> str:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    ns, name = meta.get("namespace"), meta.get("name")
    who = f"{obj.get('kind', '?')} {_shown(name) if name else '(no name)'}"
    return who + (f" in namespace {_shown(ns)}" if ns else "")


def check_object(obj: Obj, origin: str) -> None:
    """Refuse an object whose names or keys Kubernetes would refuse.

    Args:
        obj: one object, as read from a source.
        origin: where it was read (``export/app.yaml, document 3 (line 41)`` or ``live source, configmaps``).

    Raises:
        InvalidNameError: naming the object, the field and the file.
    """
    problems = object_problems(obj)
    if problems:
        more = f" (and {len(problems) - 2} more)" if len(problems) > 2 else ""
        raise InvalidNameError(
            f"{origin}: {_describe(obj)}: " + "; ".join(problems[:2]) + more,
            fix="correct the name in the export or remove the object: an API server never accepts such a name, "
            "and k3smig turns names into file names (if kubectl did not write the file, treat the export as "
            "untrusted)",
        )


def check_secret_data(obj: Obj, origin: str) -> None:
    """Refuse a Secret whose ``data`` values are not base64 (the API stores bytes; kubectl prints base64).

    Only the Secret and the key are named, never the value.

    Raises:
        SourceError: naming the Secret, the key and the file.
    """
    if obj.get("kind") != "Secret" or not isinstance(obj.get("data"), dict):
        return
    for key, value in obj["data"].items():
        text = value if isinstance(value, str) else None
        try:
            if text is None:
                raise ValueError
            base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
        except (binascii.Error, ValueError):
            raise SourceError(
                f"{origin}: {_describe(obj)}: data key {_shown(key)} is not valid base64 (the value is not shown)",
                fix="export the Secret again with kubectl, or put the plain text under stringData instead of data",
            ) from None
