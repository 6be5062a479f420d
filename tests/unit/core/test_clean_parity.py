"""Cleaner parity on real exports: kubectl-neat's fixtures lose what neat removes, and nothing neat keeps.

The fixtures (tests/fixtures/kubectl-neat, see its README) are old exports without managedFields or
last-applied: K27 decides from the default table alone there. The bundled example's managedFields list
the server's defaults as the creator's own fields, so K27 must leave it exactly as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from k3smig_lib.core.clean import clean_objects
from k3smig_lib.core.yamlstream import stream_values
from k3smig_lib.errors import SourceError
from k3smig_lib.sandbox.scale import EXAMPLE_MANIFESTS, read_export

NEAT = Path(__file__).resolve().parents[2] / "fixtures" / "kubectl-neat"
#: Fields neat keeps and k3smig drops on purpose, each with the rule that says why.
EXCEPTIONS = {("Pod", "spec.priority"): "K8"}


def leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        return {k: v for key, item in value.items() for k, v in leaves(item, f"{path}.{key}" if path else key).items()}
    if isinstance(value, list) and value:
        return {k: v for i, item in enumerate(value) for k, v in leaves(item, f"{path}[{i}]").items()}
    return {path: value}


def items(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc["items"]) if doc.get("kind") == "List" else [doc]


@pytest.mark.parametrize("name", ["pod1", "service1", "secret1", "list1"])
def test_a_neat_fixture_cleans_to_what_neat_keeps_but_the_named_exceptions(name: str) -> None:
    raw = items(json.loads((NEAT / f"{name}-raw.json").read_text()))
    neat = items(json.loads((NEAT / f"{name}-neat.json").read_text()))
    report = clean_objects(raw)
    for item, expected in zip(report.objects, neat, strict=True):
        assert item.cleaned is not None
        ours, theirs = leaves(item.cleaned), leaves(expected)
        kind = expected["kind"]
        lost = {p for p in theirs if p not in ours}
        assert {(kind, p) for p in lost} <= set(EXCEPTIONS), f"{item.ref}: neat keeps {lost}"
        for path in lost:
            assert EXCEPTIONS[(kind, path)] in item.rule_ids
        assert {p: v for p, v in ours.items() if p in theirs} == {p: v for p, v in theirs.items() if p not in lost}
        assert set(ours) - set(theirs) == set(), f"{item.ref}: k3smig keeps what neat drops"


def test_the_35_server_defaults_of_the_fixtures_are_named_k27() -> None:
    raw = [o for name in ("pod1", "service1", "list1")
           for o in items(json.loads((NEAT / f"{name}-raw.json").read_text()))]
    k27 = [c for item in clean_objects(raw).objects for c in item.changes if c.rule_id == "K27"]
    volumes = [c for c in k27 if c.path.startswith("spec.volumes")]  # token volumes K10 then drops whole
    assert len(k27) - len(volumes) == 35 and {c.path for c in volumes} == {"spec.volumes[0].secret.defaultMode"}
    assert all(c.action == "remove" and "the target's API server sets it again" in c.note for c in k27)
    assert {c.path for c in k27} >= {"spec.containers[0].imagePullPolicy", "spec.dnsPolicy", "spec.sessionAffinity",
                                     "spec.ports[0].targetPort", "spec.type", "spec.securityContext"}


def test_the_yaml_list_cleans_like_the_json_one() -> None:
    from_yaml = [streamed.data for streamed in stream_values(NEAT / "list1-raw.yaml", error=SourceError)]
    from_json = items(json.loads((NEAT / "list1-raw.json").read_text()))
    cleaned = [[i.cleaned for i in clean_objects(objs).objects] for objs in (from_yaml, from_json)]
    assert cleaned[0] == cleaned[1]


def test_k27_never_fires_on_the_bundled_example() -> None:
    report = clean_objects(list(read_export(EXAMPLE_MANIFESTS)))
    assert len(report.objects) == 223
    assert not [c for item in report.objects for c in item.changes if c.rule_id == "K27"]
