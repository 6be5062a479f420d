"""A deterministic export of N objects with the bundled example's mix, for scale tests and benchmarks.

The bundled example (223 objects) is what a small production cluster exports: managedFields, status,
ownerReferences, last-applied annotations, Helm and cert-manager metadata, Events, EndpointSlices,
Pods owned by ReplicaSets. A bigger cluster is mostly *more applications*, so the scale export is the
whole example once, then copies of its application namespaces (``monitoring``, ``pgadmin``,
``vaultwarden``, ``gitlab-runner``) renamed ``<ns>-0001``, ``<ns>-0002``… until N objects are out.
Each copy gets its own UIDs (owner references follow), so every object is distinct and the cleaner's
cross-object rules (Endpoints of selector Services, cert-manager Secrets, owned Pods) meet the same
shapes at every scale. Nothing is random: the same N always gives the same bytes.

Three layouts, as ``kubectl get`` prints them: one ``kind: List`` (``-o yaml``), multi-document YAML
(one object per document) and a JSON ``List`` (``-o json``). Files are written object by object:
generating 50,000 objects never holds them all.

Usage: ``python -m k3smig_lib.sandbox.scale --objects 10000 --layout list OUT.yaml``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TextIO

import yaml

from k3smig_lib.backends.snapshot import read_export
from k3smig_lib.core.config import PACKAGE_ROOT
from k3smig_lib.core.objects import Obj

EXAMPLE_MANIFESTS = PACKAGE_ROOT / "examples" / "prod-cluster" / "manifests"
#: Namespaces copied to grow the export: the example's applications (platform and system stay single).
APP_NAMESPACES = ("gitlab-runner", "monitoring", "pgadmin", "vaultwarden")
DEFAULT_OBJECTS = 10_000
Layout = Literal["list", "multidoc", "json"]
LAYOUTS: tuple[Layout, ...] = ("list", "multidoc", "json")
SUFFIX: dict[Layout, str] = {"list": ".yaml", "multidoc": ".yaml", "json": ".json"}

#: The C emitter when PyYAML was built with libyaml; the same text either way.
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _uids(objects: list[Obj]) -> list[str]:
    return sorted({str(o["metadata"]["uid"]) for o in objects if (o.get("metadata") or {}).get("uid")})


def _copy_uid(uid: str, copy: int) -> str:
    """A UID for ``copy`` of the object ``uid``: same shape, derived, distinct for every (uid, copy)."""
    digest = hashlib.sha256(f"{uid}/{copy}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-5{digest[13:16]}-8{digest[17:20]}-{digest[20:32]}"


class _Template:
    """One application object as JSON text, renamed and re-identified per copy by plain replacement."""

    def __init__(self, obj: Obj, uids: list[str]) -> None:
        self.text = json.dumps(obj, sort_keys=False, separators=(",", ":"))
        self.uids = [u for u in uids if u in self.text]

    def copy(self, number: int) -> Obj:
        text = self.text
        for ns in APP_NAMESPACES:
            renamed = f"{ns}-{number:04d}"
            # JSON strings equal to the namespace, plain and inside the last-applied JSON string.
            text = text.replace(f'"{ns}"', f'"{renamed}"').replace(f'\\"{ns}\\"', f'\\"{renamed}\\"')
        for uid in self.uids:
            text = text.replace(uid, _copy_uid(uid, number))
        result: Obj = json.loads(text)
        return result


def _in_app_namespace(obj: Obj) -> bool:
    meta = obj.get("metadata") or {}
    if obj.get("kind") == "Namespace":
        return meta.get("name") in APP_NAMESPACES
    return meta.get("namespace") in APP_NAMESPACES


def scale_objects(count: int = DEFAULT_OBJECTS, base: Path = EXAMPLE_MANIFESTS) -> Iterator[Obj]:
    """Yield ``count`` objects: the example once, then renamed copies of its application namespaces.

    Examples:
        >>> objs = list(scale_objects(300))
        >>> len(objs), objs[250]["metadata"].get("namespace", "").endswith("-0001")
        (300, True)
    """
    objects = read_export(base)
    templates = [_Template(o, _uids(objects)) for o in objects if _in_app_namespace(o)]
    emitted = 0
    for obj in objects:
        if emitted == count:
            return
        yield obj
        emitted += 1
    number = 0
    while emitted < count:
        number += 1
        for template in templates:
            if emitted == count:
                return
            yield template.copy(number)
            emitted += 1


def _yaml_text(obj: Obj) -> str:
    # kubectl prints keys sorted; indented sequences are what go-yaml writes inside a List too.
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=10**6)


def _write_list(objects: Iterator[Obj], out: TextIO) -> None:
    out.write("apiVersion: v1\nitems:\n")
    for obj in objects:
        lines = _yaml_text(obj).splitlines()
        out.write("- " + lines[0] + "\n")
        out.writelines(f"  {line}\n" for line in lines[1:])
    out.write('kind: List\nmetadata:\n  resourceVersion: ""\n')


def _write_multidoc(objects: Iterator[Obj], out: TextIO) -> None:
    for number, obj in enumerate(objects):
        out.write(("---\n" if number else "") + _yaml_text(obj))


def _write_json(objects: Iterator[Obj], out: TextIO) -> None:
    out.write('{\n    "apiVersion": "v1",\n    "items": [\n')
    for number, obj in enumerate(objects):
        text = json.dumps(obj, indent=4, ensure_ascii=False)
        out.write((",\n" if number else "") + "\n".join("        " + line for line in text.splitlines()))
    out.write('\n    ],\n    "kind": "List",\n    "metadata": {\n        "resourceVersion": ""\n    }\n}\n')


_WRITERS = {"list": _write_list, "multidoc": _write_multidoc, "json": _write_json}


def write_scale_export(path: Path, count: int = DEFAULT_OBJECTS, layout: Layout = "list") -> Path:
    """Write ``count`` objects to ``path`` in ``layout``, one object at a time; return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        _WRITERS[layout](scale_objects(count), out)
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: write one scale export file."""
    parser = argparse.ArgumentParser(prog="python -m k3smig_lib.sandbox.scale", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="file to write (.yaml or .json)")
    parser.add_argument("--objects", type=int, default=DEFAULT_OBJECTS, help="number of objects (default 10000)")
    parser.add_argument("--layout", choices=LAYOUTS, default="list", help="kind: List, multi-document YAML or JSON")
    args = parser.parse_args(argv)
    write_scale_export(args.out, args.objects, args.layout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
