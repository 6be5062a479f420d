"""The cleaner over a stream: two passes over a spool on disk, so memory holds facts, never the export.

Cross-object rules need the whole export before the first object is cleaned (an Endpoints object is
generated only when its Service has a selector, and ``kubectl`` lists Endpoints before Services). The
first pass reads each object once: the context takes the *facts* it needs
(:class:`~k3smig_lib.core.clean.context.ContextBuilder`) and the object goes to a temporary spool file
(pickle: an order of magnitude cheaper than parsing YAML again). The second pass cleans the spooled
objects one at a time, in input order, and hands each :class:`CleanedObject` out as soon as it is
made, so the caller writes it and lets it go.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO

from k3smig_lib.core.clean.context import ContextBuilder
from k3smig_lib.core.clean.engine import clean_object
from k3smig_lib.core.clean.model import CleanedObject, CleanOptions
from k3smig_lib.core.objects import Obj, sha256_of
from k3smig_lib.errors import WriteError


def clean_stream(
    objects: Iterable[tuple[Obj, str]],
    options: CleanOptions | None = None,
    *,
    observe: Callable[[Obj], None] | None = None,
) -> Iterator[CleanedObject]:
    """Clean an export that streams past, one object at a time, the same way :func:`clean_objects` does.

    Args:
        objects: ``(object, sha256 or "")`` pairs in export order; nothing else keeps a reference to them.
        options: what the target looks like; defaults to a stock K3s with ingress-nginx.
        observe: shown every object of the first pass (e.g. to keep the few facts a caller needs).

    Yields:
        One cleaned object per input object, in input order; the reading errors of ``objects`` come
        before the first one.
    """
    builder = ContextBuilder(options if options is not None else CleanOptions())
    with _spool() as spool:
        count = 0
        for obj, digest in objects:
            builder.add(obj)
            if observe is not None:
                observe(obj)
            with _writing(spool):
                pickle.dump((obj, digest or sha256_of(obj)), spool, protocol=pickle.HIGHEST_PROTOCOL)
            count += 1
        ctx = builder.finish()
        with _writing(spool):
            spool.seek(0)
        for _ in range(count):
            obj, digest = pickle.load(spool)
            yield clean_object(obj, ctx, owned=True, digest=digest)


@contextmanager
def _spool() -> Iterator[IO[bytes]]:
    with _writing(None):
        fh = tempfile.TemporaryFile(prefix="k3smig-clean-")
    with fh:
        yield fh


@contextmanager
def _writing(spool: IO[bytes] | None) -> Iterator[None]:
    """Turn a failed write to the spool (disk full, file size limit) into a :class:`WriteError`."""
    try:
        yield
    except OSError as e:
        raise WriteError(f"cannot write the cleaner's spool file in {tempfile.gettempdir()}: {e.strerror or e}",
                         fix="free disk space there (it holds the export once, as pickles) or set TMPDIR") from e
