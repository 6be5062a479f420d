"""Remove credential values from anything the infra drivers hand back or leave on disk.

Terraform and Ansible both inherit the operator's environment (that is how the Scaleway provider and
the external-dns role get ``SCW_SECRET_KEY``), and both can echo it: a provider error, a debug task, an
ansible-runner ``command`` artifact that dumps the whole environment. So every string the drivers
return goes through :func:`scrub`, keyed on the values of the credential variables actually set.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

#: Variables that always count as credentials, whatever their name pattern.
CREDENTIAL_ENV = (
    "SCW_ACCESS_KEY",
    "SCW_SECRET_KEY",
    "SCW_DEFAULT_PROJECT_ID",
    "SCW_DEFAULT_ORGANIZATION_ID",
)
_SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|PRIVATE_KEY|ACCESS_KEY|API_KEY)", re.IGNORECASE)
#: Shorter values are not scrubbed: replacing "1" or "true" everywhere would garble reports.
_MIN_LEN = 6
MASK = "********"


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Return the credential values set in the environment, longest first, with their base64 forms.

    Args:
        environ: the environment to read; ``os.environ`` when omitted.

    Returns:
        Values to mask, longest first so a value containing another is masked whole.

    Examples:
        >>> secret_values({"SCW_SECRET_KEY": "s3cr3t-value", "HOME": "/root"})[:1]
        ['czNjcjN0LXZhbHVl']
    """
    env = os.environ if environ is None else environ
    found: set[str] = set()
    for name, value in env.items():
        if (name in CREDENTIAL_ENV or _SECRET_NAME.search(name)) and len(value) >= _MIN_LEN:
            found.add(value)
            found.add(base64.b64encode(value.encode()).decode())
    return sorted(found, key=len, reverse=True)


def scrub(text: str, values: Iterable[str]) -> str:
    """Replace every occurrence of each value in ``text`` by a fixed mask.

    Args:
        text: any text that may have seen the environment.
        values: values from :func:`secret_values`.

    Returns:
        The text with the values masked.

    Examples:
        >>> scrub("key=abcdef123", ["abcdef123"])
        'key=********'
    """
    for value in values:
        if value:
            text = text.replace(value, MASK)
    return text


def scrub_obj(obj: Any, values: list[str]) -> Any:
    """Apply :func:`scrub` to every string inside nested dicts and lists (keys included).

    Args:
        obj: a JSON-like value.
        values: values from :func:`secret_values`.

    Returns:
        A copy of ``obj`` with the values masked.
    """
    if isinstance(obj, str):
        return scrub(obj, values)
    if isinstance(obj, Mapping):
        return {scrub_obj(k, values): scrub_obj(v, values) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub_obj(v, values) for v in obj]
    return obj
