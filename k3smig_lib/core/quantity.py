"""Kubernetes resource quantities (``250m``, ``512Mi``, ``5Gi``) as numbers, for capacity checks."""

from __future__ import annotations

import re

_SUFFIX = {
    "": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]{0,2})$")


def parse_quantity(text: str | int | float | None) -> float:
    """Parse a quantity into base units (cores or bytes); empty or ``None`` is 0.

    Raises:
        ValueError: the text is not a Kubernetes quantity.

    Examples:
        >>> parse_quantity("250m"), parse_quantity("1Gi"), parse_quantity(2)
        (0.25, 1073741824.0, 2.0)
    """
    if text is None or text == "":
        return 0.0
    if isinstance(text, int | float):
        return float(text)
    match = _QUANTITY.match(text.strip())
    if not match or match.group(2) not in _SUFFIX:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def gib(n_bytes: float) -> float:
    """Bytes → GiB rounded to 2 decimals, for tables."""
    return round(n_bytes / 2.0**30, 2)
