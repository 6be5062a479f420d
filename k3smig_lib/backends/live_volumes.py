"""Volumes of a live cluster behind the transfer port: a helper pod per volume, scripts over ``pods/exec``.

:class:`PodVolume` is both a :class:`~k3smig_lib.backends.base.SourceVolume` and a
:class:`~k3smig_lib.backends.base.TargetVolume`: its manifest is built inside the pod from disk
(never from what was sent), its stream is ``tar -c`` read from the pod's stdout, its writer is
``tar -x`` fed on the pod's stdin. Every stream's completion is proven three ways before it counts:
the tar end-of-archive marker (checked while hashing), the byte count tar reports (``--totals``)
against the bytes that passed, and the exit code from the in-band sentinel. A cut stream is a
:class:`~k3smig_lib.errors.DataMismatchError` and the target volume stays marked ``dirty``.

The data state of a target volume is an annotation on its claim (``k3smig.io/volume-state``), written
by its own field manager so the deploy phase's server-side apply neither removes nor fights it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from k3smig_lib.backends.base import Capacity, VolumeAccess, VolumeRef, WriteReport
from k3smig_lib.core.manifest import Manifest
from k3smig_lib.core.ownership import OwnershipPlan
from k3smig_lib.core.quantity import parse_quantity
from k3smig_lib.core.transfer import extract_selected
from k3smig_lib.core.volscripts import (
    MANIFEST,
    PROBE,
    Probe,
    create_script,
    extract_script,
    nul_list,
    parse_manifest,
    parse_probe,
    parse_totals,
    quiet_stderr,
    remap_script,
)
from k3smig_lib.errors import DataMismatchError
from k3smig_lib.k8s.exec import ExecError, ExecResult, PodExec
from k3smig_lib.k8s.volhelper import Helper, HelperSpec, placement
from k3smig_lib.log import logger

if TYPE_CHECKING:
    from k3smig_lib.k8s.client import Kube

STATE_ANNOTATION = "k3smig.io/volume-state"
_FLUSH = 1 << 20  # bytes gathered before they are sent: a volume of small files still moves in large frames
DATA_MANAGER = "k3smig-data"


def _check(result: ExecResult, what: str, *, allow: frozenset[int] = frozenset()) -> None:
    if result.rc == 0 or (result.rc is not None and result.rc in allow):
        return
    detail = quiet_stderr(result.stderr)[:300] or "no error output"
    if result.rc is None:
        raise DataMismatchError(f"{what}: the command ended without its exit sentinel (a cut stream): {detail}",
                                fix="re-run the data phase; the volume is copied again and proven by manifest")
    raise DataMismatchError(f"{what}: exit code {result.rc}: {detail}",
                            fix="read the command's error above; the volume is not trusted and not released")


class Exec(Protocol):
    """A running volume script: stdin written, stdout read as bytes, ended by ``finish`` (a :class:`PodExec`)."""

    what: str
    stdout_bytes: int

    def write(self, data: bytes, /) -> int:
        """Send bytes to the script's stdin."""
        ...

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes of stdout (``b""`` at the end)."""
        ...

    def read_some(self) -> bytes:
        """Whatever stdout is available, waiting for some."""
        ...

    def read_all(self) -> bytes:
        """Stdout until the script ends."""
        ...

    def close_stdin(self) -> None:
        """Signal end of input where possible."""
        ...

    def finish(self, *, deadline: float = 600.0) -> ExecResult:
        """Wait for the end; how it ended."""
        ...

    def close(self) -> None:
        """Release the stream (the script is stopped if still running)."""
        ...


Starter = Callable[[str], Exec]
"""Starts one ``sh -c`` script next to the volume (``VOLUME_DIR`` set) and returns it running."""


class _ExecReader:
    """A source stream: stdout of ``tar -c`` in the helper, checked the moment it ends.

    The end is checked here, at the first empty read, rather than after the consumer is done: a
    consumer that parses the archive fails on a short one with "unexpected end of data", which says
    nothing about why. Checking first names the cause — the broken connection, tar's exit code and
    error, or a byte count short of what tar wrote.
    """

    def __init__(self, ex: Exec, where: str, allow: frozenset[int], restart: Callable[[], Exec] | None = None
                 ) -> None:
        self.ex, self.where, self.allow = ex, where, allow
        self.name = ex.what
        self.result: ExecResult | None = None
        self.restart = restart  # once: a connection lost before the first byte is started again

    def read(self, size: int = -1, /) -> bytes:
        data = self.ex.read_some() if size < 0 else self.ex.read(size)
        if not data and self.result is None:
            if getattr(self.ex, "broken", "") and self.ex.stdout_bytes == 0 and self.restart is not None:
                # nothing has passed yet, so nothing is lost: ``tar -c`` only reads the volume
                logger.warning("%s: connection lost before the first byte (%s); starting it again",
                               self.name, getattr(self.ex, "broken", ""))
                restart, self.restart = self.restart, None
                self.ex.close()
                self.ex = restart()
                return self.read(size)
            self.result = self.ended()
        return data

    def ended(self) -> ExecResult:
        """How ``tar -c`` ended, checked: raises unless it ended well and every byte it wrote arrived."""
        broken = getattr(self.ex, "broken", "")
        if broken:  # a dropped connection is not an end of stream: say what broke
            raise DataMismatchError(f"{self.name}: the stream broke after {self.ex.stdout_bytes} bytes ({broken})",
                                    fix="re-run the data phase; the volume stays marked dirty and is copied again")
        left = self.ex.read_all()
        result = self.ex.finish()
        _check(result, f"{self.where}: tar -c", allow=self.allow)
        written = parse_totals(result.stderr, "written")
        if left or (written is not None and written != self.ex.stdout_bytes):
            raise DataMismatchError(f"{self.where}: tar wrote {written} bytes, {self.ex.stdout_bytes} arrived"
                                    + (f" ({len(left)} unread)" if left else ""),
                                    fix="re-run the data phase; the stream was cut")
        return result


class _ExecWriter:
    """A target writer: stdin of ``tar -x`` in the helper."""

    def __init__(self, ex: Exec, volume: ScriptVolume, plan: OwnershipPlan) -> None:
        self.ex, self.volume, self.plan = ex, volume, plan
        self.sent = 0
        self._pending = bytearray()  # small tar members are gathered into full frames

    def write(self, data: bytes, /) -> object:
        self._pending += data
        if len(self._pending) >= _FLUSH:
            self._flush()
        return len(data)

    def _flush(self) -> None:
        data, self._pending = bytes(self._pending), bytearray()
        if not data:
            return
        try:
            self.ex.write(data)
        except ExecError as e:
            result = self.ex.finish(deadline=60)
            raise DataMismatchError(
                f"{self.volume.where}: the writer stopped after {self.sent} bytes: "
                f"{quiet_stderr(result.stderr)[:300] or e.message}",
                fix="free space on the target or fix the error above, then re-run; the volume stays marked dirty"
            ) from e
        self.sent += len(data)

    def finish(self) -> WriteReport:
        self._flush()
        self.ex.close_stdin()
        result = self.ex.finish()
        _check(result, f"{self.volume.where}: tar -x")
        read = parse_totals(result.stderr, "read")
        if read is not None and read != self.sent:
            raise DataMismatchError(f"{self.volume.where}: tar read {read} bytes of the {self.sent} sent",
                                    fix="re-run the data phase; the stream was cut")
        owners = "kept from the stream (numeric)"
        if self.plan.action == "chown":
            self.volume.run_script(remap_script(self.plan.target_uid, self.plan.target_gid), "setting owners")
            owners = f"set to {self.plan.target_uid if self.plan.target_uid is not None else '*'}:" \
                f"{self.plan.target_gid if self.plan.target_gid is not None else '*'} by the plan"
        return WriteReport(bytes_received=self.sent, bytes_extracted=read, owners=owners,
                           detail=f"tar -x in {self.volume.where}")


class ScriptVolume:
    """One volume reached through the volume scripts, whatever runs them (a helper pod, in production).

    Its manifest is built from disk next to the volume, its stream is ``tar -c`` read from the
    script's stdout, its writer ``tar -x`` fed on stdin; the data state is kept by the subclass.

    Args:
        start: starts one script next to the volume (``VOLUME_DIR`` set).
        volume: the claim.
        access: who reads/writes it, and why (for the report).
    """

    subset = True
    immutable = False
    supports_delta = True
    owners_exact = True

    def __init__(self, start: Starter, volume: VolumeRef, access: VolumeAccess) -> None:
        self.start, self.volume, self.access = start, volume, access
        self.side, self.where = access.side, access.where
        self._probe: Probe | None = None

    def run_script(self, script: str, what: str, stdin: bytes = b"") -> bytes:
        """Run a short script to its end; its stdout, or an error naming ``what``."""
        ex = self.start(script)
        try:
            if stdin:
                ex.write(stdin)
                ex.close_stdin()
            out = ex.read_all()
            _check(ex.finish(), f"{self.where}: {what}")
            return out
        finally:
            ex.close()

    def probe(self) -> Probe:
        """GNU tar present, the helper's user, free bytes (cached).

        Raises:
            DataMismatchError: the image has no GNU tar (the scripts need it).
        """
        if self._probe is None:
            self._probe = parse_probe(self.run_script(PROBE, "probe"))
            if not self._probe.gnu_tar:
                raise DataMismatchError(f"{self.where}: the helper image has no GNU tar ({self._probe.tar or 'none'})",
                                        fix="set volume_helper_image to an image with GNU tar, find and coreutils "
                                            "(the default debian:bookworm-slim has them)")
        return self._probe

    def manifest(self) -> Manifest:
        """The volume as it is on disk now, hashed next to it."""
        self.probe()
        return parse_manifest(self.run_script(MANIFEST, "manifest"), f"{self.side} {self.where}")

    @contextmanager
    def stream(self, paths: Sequence[str] | None = None, *, allow_changes: bool = False,
               ignore_missing: bool = False) -> Iterator[IO[bytes]]:
        """``tar -c`` of the volume (or of ``paths``) as a readable stream; completion checked at the end.

        Args:
            paths: entries to send (None: the whole volume).
            allow_changes: accept tar's exit code 1 ("file changed as we read it"): pass 1 of a
                running application, which a later pass makes exact.
            ignore_missing: listed paths that do not exist are skipped (fetching files for checks).
        """
        listing = nul_list(paths) if paths is not None else b""

        def begin() -> Exec:
            started = self.start(create_script(len(listing) if paths is not None else None,
                                               ignore_missing=ignore_missing))
            try:
                if listing:
                    started.write(listing)
            except BaseException:
                started.close()
                raise
            return started

        reader = _ExecReader(begin(), self.where, frozenset({1}) if allow_changes else frozenset(), restart=begin)
        try:
            yield reader  # type: ignore[misc]
            if reader.result is None:  # the consumer stopped before the end: read it and check
                reader.ended()
        finally:
            reader.ex.close()

    def fetch(self, paths: Sequence[str], dest: Path) -> list[str]:
        """Copy regular files out of the volume into ``dest`` (application checks)."""
        if not paths:
            return []
        with self.stream(paths, ignore_missing=True) as s:
            found = extract_selected(s, paths, dest, self.where)
            while s.read(1 << 20):
                pass
        return found

    @contextmanager
    def writer(self, *, delete: Sequence[str], plan: OwnershipPlan, full: bool) -> Iterator[_ExecWriter]:
        """``tar -x`` next to the volume, after deleting ``delete``; owners set by the plan at the end."""
        listing = nul_list(delete)
        as_root = self.access.user in ("", "0:0")
        ex = self.start(extract_script(len(listing), as_root=as_root))
        try:
            if listing:
                ex.write(listing)
            yield _ExecWriter(ex, self, plan)
        finally:
            ex.close()


class PodVolume(ScriptVolume):
    """One claim reached through a running helper pod; its data state is an annotation on the claim.

    Args:
        kube: the cluster's transport.
        helper: the running helper pod.
        volume: the claim (on the target: the claim of the same name).
        why: why the helper runs as its user (for the report).
    """

    def __init__(self, kube: Kube, helper: Helper, volume: VolumeRef, why: str) -> None:
        self.kube, self.helper = kube, helper
        self.namespace, self.pod = helper.spec.namespace, helper.name
        access = VolumeAccess(side=helper.spec.side, where=helper.where, user=helper.spec.user_text, why=why,
                              image=helper.spec.image)
        super().__init__(self._start, volume, access)

    def _start(self, script: str) -> Exec:
        return PodExec(self.kube.api, self.namespace, self.pod, ["sh", "-c", script], side=self.side)

    # --- target side -----------------------------------------------------------------------------

    def _claim_path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/persistentvolumeclaims/{self.volume.claim}"

    def capacity(self) -> Capacity:
        """The target claim's requested size and the free bytes of the filesystem under the volume."""
        claim = self.kube.json("GET", self._claim_path(), counter="gets")
        request = ((claim.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")
        return Capacity(requested=int(parse_quantity(request)) if request else None, free=self.probe().free_bytes)

    def state(self) -> str:
        """The data state recorded on the target claim (``""`` when never written)."""
        claim = self.kube.json("GET", self._claim_path(), counter="gets")
        return str(((claim.get("metadata") or {}).get("annotations") or {}).get(STATE_ANNOTATION, ""))

    def mark(self, state: str) -> None:
        """Record the data state on the claim (merge patch by the ``k3smig-data`` field manager)."""
        self.kube.request("PATCH", self._claim_path(), counter="writes", query={"fieldManager": DATA_MANAGER},
                          body={"metadata": {"annotations": {STATE_ANNOTATION: state}}},
                          content_type="application/merge-patch+json")


def helper_spec(volume: VolumeRef, side: str, *, run_id: str, image: str, user: tuple[int, int] | None,
                kube: Kube) -> HelperSpec:
    """The helper for ``volume``: on the node where the claim is in use, with that pod's tolerations."""
    where = placement(kube, volume.namespace, volume.claim)
    return HelperSpec(namespace=volume.namespace, claim=volume.claim, side=side, run_id=run_id, image=image,
                      user=user, node=where.node, tolerations=where.tolerations)


@contextmanager
def open_pod_volume(kube: Kube, volume: VolumeRef, side: str, *, run_id: str, image: str,
                    user: tuple[int, int] | None, why: str, start_timeout: float = 300.0) -> Iterator[PodVolume]:
    """Start the helper for ``volume``, yield the volume, and delete the helper in every outcome."""
    helper = Helper(kube, helper_spec(volume, side, run_id=run_id, image=image, user=user, kube=kube))
    try:
        helper.create()
        helper.wait_running(start_timeout)
        yield PodVolume(kube, helper, volume, why)
    finally:
        helper.delete()


__all__ = ["DATA_MANAGER", "STATE_ANNOTATION", "Exec", "PodVolume", "ScriptVolume", "Starter", "open_pod_volume"]
