"""The streaming cleaner and writers: the same objects, changes, files and reports as the in-memory ones."""

from pathlib import Path

import yaml

from k3smig_lib.backends.directory import DirectoryTarget, dump_yaml
from k3smig_lib.backends.snapshot import iter_export, read_export
from k3smig_lib.core import yamlout
from k3smig_lib.core.clean import CleanOptions, clean_objects
from k3smig_lib.core.clean.stream import clean_stream
from k3smig_lib.core.sealing import strip_values
from k3smig_lib.sandbox.scale import scale_objects, write_scale_export

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "prod-cluster" / "manifests"
OPTIONS = CleanOptions(keep_helm_releases=True, expose_node_ports=True)


def test_streamed_cleaning_equals_cleaning_the_whole_export():
    objects = read_export(EXAMPLE)
    whole = clean_objects(objects, OPTIONS).objects
    streamed = list(clean_stream(iter_export(EXAMPLE), OPTIONS))
    assert [(o.ref, o.original, o.original_sha256, o.cleaned, o.changes, o.facts) for o in streamed] == [
        (o.ref, o.original, o.original_sha256, o.cleaned, o.changes, o.facts) for o in whole]


def test_objects_read_before_their_facts_are_cleaned_with_them(tmp_path):
    # kubectl lists Endpoints before Services: W4 must still see the Service's selector.
    (tmp_path / "a.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "shop"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}]))
    first = next(clean_stream(iter_export(tmp_path)))
    assert first.dropped and first.rule_ids == ["W4"]


def test_write_new_writes_what_apply_writes_to_an_empty_tree(tmp_path):
    cleaned = [c.cleaned for c in clean_objects(list(scale_objects(400))).kept() if c.cleaned]
    DirectoryTarget(tmp_path / "a", seal=strip_values).apply(cleaned, dry_run=False)
    assert DirectoryTarget(tmp_path / "b", seal=strip_values).write_new(iter(cleaned)) == len(cleaned)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) > 100
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files_a)


def test_fast_yaml_is_byte_identical_to_safe_dump():
    objects = list(scale_objects(300))
    values = objects + [c.cleaned for c in clean_objects(objects).kept()]
    values += [{"when": __import__("datetime").date(2024, 1, 2)}, {"shared": [objects[0]] * 2}, {1: "a", "b": 2.5}]
    for width in (80, 120):
        for value in values:
            options = {"sort_keys": True, "default_flow_style": False, "allow_unicode": True, "width": width}
            assert yamlout.dump(value, **options) == yaml.safe_dump(value, **options)
    assert dump_yaml(objects[0]) == yaml.safe_dump(objects[0], sort_keys=True, default_flow_style=False,
                                                   allow_unicode=True, width=120)


def test_fast_yaml_documents_are_byte_identical_to_safe_dump_all():
    # phase 40 writes the example's originals, cleaned objects and diffs with PyYAML's defaults
    objects = read_export(EXAMPLE)  # every shape the export has (the scale copies only rename them)
    objects.append({"kind": "ConfigMap", "data": {"motd": "caf\u00e9 " * 20, "script": "a\nb\n", "tab": "x\ty"}})
    cleaned = [c.cleaned for c in clean_objects(objects).kept() if c.cleaned]
    for docs in (objects, cleaned, [], [{}], ["x"], [objects[0], None, objects[1]], [[1, 2], {"a": 1}]):
        for options in ({"sort_keys": True}, {"sort_keys": True, "width": 120}, {"sort_keys": True, "width": 100}):
            assert yamlout.dump_all(docs, **options) == yaml.safe_dump_all(docs, **options)
    for value in objects[:50]:
        assert yamlout.dump(value, sort_keys=True, width=100) == yaml.safe_dump(value, sort_keys=True, width=100)


def test_the_clean_command_gives_the_same_tree_for_every_layout(tmp_path):
    from k3smig_lib.cleancli import clean_export

    trees = []
    for layout in ("list", "multidoc", "json"):
        export = tmp_path / f"in-{layout}"
        write_scale_export(export / f"all.{'json' if layout == 'json' else 'yaml'}", 600, layout)
        out = tmp_path / f"out-{layout}"
        assert clean_export(export, out).summary.startswith("600 objects read")
        trees.append({p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()})
    assert trees[0] == trees[1] == trees[2]
