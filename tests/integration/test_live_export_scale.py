"""Live export at scale (issue 12): the scale generator's objects seeded into a sandbox of their own, exported
page by page and cleaned by ``k3smig clean --context``'s pipeline.

- the live path writes exactly what ``k3smig clean`` of the snapshot it saved on the way writes (same
  objects, same files, same report), and every cleaned file of the generator's own export cleaned offline;
- it streams: objects are on disk while lists are still being requested (Kube call counters seen from
  the ``on_page`` hook), never after the whole list.

The sandbox is this module's own (seeding 600 objects into the session's source would change what the
other live tests export). Figures go to stdout with a ``FIGURES`` prefix (run with ``-s``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from k3smig_lib.backends.live_export import LiveSpool
from k3smig_lib.backends.live_source import LiveSource
from k3smig_lib.backends.snapshot import iter_export
from k3smig_lib.cleancli import clean_export, clean_live
from k3smig_lib.core.objects import ref
from k3smig_lib.k8s.client import ClusterRef
from k3smig_lib.k8s.listing import PageEvent
from k3smig_lib.sandbox import SandboxStatus, running
from k3smig_lib.sandbox.scale import write_scale_export
from k3smig_lib.sandbox.scaleseed import ScaleSeedReport, seed_scale

pytestmark = pytest.mark.integration

OBJECTS = 600
PAGE_SIZE = 25
#: Cleaned files of the generator's export that the live one may write differently: the API server omits a
#: PriorityClass's ``globalDefault: false``, and kustomization.yaml lists the sandbox's own extra files.
SERVER_SHAPED = {"kustomization.yaml", "priorityclass-prod-critical.yaml"}
#: Kinds whose seeded objects the sandbox's controllers may replace or delete (Pods of scaled-down ReplicaSets,
#: slices, and dynamic PVs of reclaim policy Delete whose claim now has another UID).
CONTROLLED = ("Pod", "ReplicaSet", "EndpointSlice", "PersistentVolume")


@pytest.fixture(scope="module")
def scale_sandbox(sandbox_bin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxStatus]:
    with running(tmp_path_factory.mktemp("scale-sandbox") / "state", sandbox_bin_dir) as st:
        yield st


@pytest.fixture(scope="module")
def scale_seeded(scale_sandbox: SandboxStatus) -> ScaleSeedReport:
    report = seed_scale(scale_sandbox.kubeconfig, scale_sandbox.contexts["source"], OBJECTS)
    print(f"FIGURES seed {OBJECTS}: {report.created} created, {report.existing} existing, "
          f"{len(report.skipped)} skipped in {report.seconds:.1f} s")
    return report


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_seed_creates_every_generated_object(scale_seeded: ScaleSeedReport) -> None:
    assert scale_seeded.failed == {}
    assert {why.split(" ", 1)[0] for why in scale_seeded.skipped.values()} <= {"needs", "its"}
    assert scale_seeded.created + scale_seeded.existing + len(scale_seeded.skipped) == OBJECTS
    assert scale_seeded.created > OBJECTS * 0.8  # the sandbox's own system objects are the "existing" ones


def test_live_clean_streams_and_matches_the_offline_clean(
    scale_sandbox: SandboxStatus, scale_seeded: ScaleSeedReport, tmp_path: Path
) -> None:
    seen: list[tuple[int, int, PageEvent]] = []  # (list calls so far, objects on disk, page)
    spools: list[LiveSpool] = []

    def on_page(event: PageEvent) -> None:
        seen.append((source.kube.counts.lists, spools[0].spooled if spools else 0, event))

    ref_ = ClusterRef(str(scale_sandbox.kubeconfig), scale_sandbox.contexts["source"], "source")
    source = LiveSource(ref_, page_size=PAGE_SIZE, workers=4, on_page=on_page)
    live_out, snapshot = tmp_path / "live", tmp_path / "snapshot"
    summary = clean_live(source, live_out, snapshot=snapshot, watch=spools.append).summary

    # Streaming: the first object was on disk long before the last list request; pages were many.
    total_lists = source.kube.counts.lists
    first_on_disk = next(calls for calls, spooled, _ in seen if spooled > 0)
    assert source.stats is not None
    pages = sum(r.pages for r in source.stats.results)
    print(f"FIGURES live clean {summary.split(';')[0]}: {pages} pages of {PAGE_SIZE}, {total_lists} list calls, "
          f"first object on disk after {first_on_disk} of them")
    assert pages == len(seen) and pages > OBJECTS // PAGE_SIZE
    assert first_on_disk < total_lists // 2
    assert spools[0].spooled >= OBJECTS - len(scale_seeded.skipped)

    # Same objects, same output: the snapshot saved on the way, cleaned offline, gives the same tree and report.
    offline = tmp_path / "offline"
    clean_export(snapshot, offline)
    assert files(live_out) == files(offline)

    # Every seeded object of an exported kind is in the live export.
    exported = {ref(o).identity for o, _ in iter_export(snapshot)}
    missing = sorted(i for i in scale_seeded.present - exported if i.split("/")[1] not in CONTROLLED + ("Event",))
    assert missing == []

    # And the generator's own export cleaned offline: every cleaned file is there, the same bytes.
    gen = write_scale_export(tmp_path / "gen" / "export.yaml", OBJECTS)
    gen_out = tmp_path / "gen-out"
    clean_export(gen.parent, gen_out)
    generated, live = files(gen_out / "manifests"), files(live_out / "manifests")
    assert set(generated) <= set(live)
    differ = sorted(p for p in generated if generated[p] != live[p] and Path(p).name not in SERVER_SHAPED)
    assert differ == []
