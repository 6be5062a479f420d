"""YAML that reads like ``kubectl get -o yaml``: sorted keys, block style, ``|`` for multi-line text.

kubectl turns objects into JSON and then YAML, so map keys come out sorted, lists are not indented
under their key, strings that would parse as something else (timestamps, numbers, ``"true"``) are
double-quoted, and text with newlines (last-applied-configuration, ConfigMap files) uses ``|``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from _gen.common import Obj

_STR_TAG = "tag:yaml.org,2002:str"


class _KubectlDumper(yaml.SafeDumper):
    """SafeDumper with kubectl's string quoting and no anchors (kubectl never writes ``&id001``)."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data and not any(line != line.rstrip() for line in data.split("\n")):
        return dumper.represent_scalar(_STR_TAG, data, style="|")
    implicit_tag = dumper.resolve(yaml.ScalarNode, data, (True, False))  # type: ignore[no-untyped-call]
    if data == "" or implicit_tag != _STR_TAG:
        return dumper.represent_scalar(_STR_TAG, data, style='"')
    return dumper.represent_scalar(_STR_TAG, data)


_KubectlDumper.add_representer(str, _represent_str)


def dump(data: Any) -> str:
    """Render ``data`` the way kubectl prints it."""
    text: str = yaml.dump(
        data, Dumper=_KubectlDumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=4096
    )
    return text


def kube_list(items: list[Obj]) -> Obj:
    """Wrap ``items`` in the ``v1/List`` envelope of ``kubectl get <kind> -o yaml``."""
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def write_text(path: Path, text: str) -> None:
    """Write ``text`` with Unix newlines, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")
