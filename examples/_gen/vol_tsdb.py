"""The ``prometheus-data`` and ``storage-loki-0`` volumes: small trees shaped like the real thing.

Prometheus (uid 65534, ``nobody``) keeps a WAL, memory-mapped head chunks, a ``lock`` file (empty)
and persisted blocks named by ULID, each with ``meta.json``, ``index``, ``chunks/000001`` and
``tombstones``; the files start with the format's magic numbers. Loki (uid 10001) keeps chunks,
TSDB index shards and a WAL under its storage root.
"""

from __future__ import annotations

import json
import struct

from _gen.common import det_bytes, epoch
from _gen.tarball import Tree

PROMETHEUS_UID = 65534
LOKI_UID = 10001
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(ms: int, label: str) -> str:
    """A ULID for a block created at ``ms`` (milliseconds since the epoch)."""
    value = (ms << 80) | int.from_bytes(det_bytes("ulid:" + label, 10), "big")
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def _segment(label: str, payload: int, size: int) -> bytes:
    return det_bytes(label, payload) + bytes(size - payload)


def _block(vol: Tree, start_ms: int, label: str) -> str:
    block = ulid(start_ms + 7_200_000 + 60_000, label)
    meta = {
        "ulid": block,
        "minTime": start_ms,
        "maxTime": start_ms + 7_200_000,
        "stats": {"numSamples": 412_800, "numSeries": 1_720, "numChunks": 3_440},
        "compaction": {"level": 1, "sources": [block]},
        "version": 1,
    }
    when = start_ms // 1000 + 7_260
    vol.file(f"{block}/meta.json", json.dumps(meta, indent="\t").encode(), mtime=when)
    vol.file(
        f"{block}/index",
        struct.pack(">IB", 0xBAAAD700, 2) + _segment("index:" + label, 2_400, 4_096),
        mtime=when,
    )
    vol.file(
        f"{block}/chunks/000001",
        struct.pack(">IB3x", 0x85BD40DD, 1) + det_bytes("chunks:" + label, 6_000),
        mtime=when,
    )
    vol.file(f"{block}/tombstones", struct.pack(">IBI", 0x0130BA30, 1, 0), mtime=when)
    return block


def prometheus_tree() -> Tree:
    """The TSDB volume mounted at ``/prometheus``."""
    now = epoch("2025-01-20T09:59:30Z")
    vol = Tree(uid=PROMETHEUS_UID, gid=PROMETHEUS_UID, mtime=now, root_mode=0o2775)
    vol.file("lock", b"", mtime=epoch("2025-01-06T11:02:14Z"))
    vol.file("queries.active", b"[" + bytes(20_000), mtime=now)
    for hours in (0, 2):
        _block(vol, (epoch("2025-01-20T02:00:00Z") + hours * 3600) * 1000, f"prom-{hours}")
    vol.file("chunks_head/000001", struct.pack(">IB3x", 0x0130BC91, 1) + det_bytes("head", 3_000), mtime=now)
    vol.file("chunks_head/000002", struct.pack(">IB3x", 0x0130BC91, 1) + det_bytes("head-2", 1_200), mtime=now)
    vol.file("wal/00000000", _segment("wal-0", 6_000, 32_768), mtime=epoch("2025-01-20T06:00:03Z"))
    vol.file("wal/00000001", _segment("wal-1", 2_500, 32_768), mtime=now)
    return vol


def loki_tree() -> Tree:
    """Loki's filesystem storage mounted at ``/var/loki``."""
    now = epoch("2025-01-20T09:59:45Z")
    vol = Tree(uid=LOKI_UID, gid=LOKI_UID, mtime=now, root_mode=0o2775)
    tenant = "fake"
    for k in range(4):
        name = det_bytes(f"loki-chunk-name:{k}", 24).hex()
        vol.file(
            f"chunks/{tenant}/{name[:16]}/{name}",
            det_bytes(f"loki-chunk:{k}", 2_048 + 512 * k),
            mtime=now - 7_200 * (k + 1),
        )
    vol.file(
        f"tsdb-shipper-active/multitenant/index_20108/1737360000-loki-0-{1737360000 + 3 * 3600}.tsdb",
        det_bytes("loki-tsdb", 1_536),
        mtime=now,
    )
    vol.file(
        "tsdb-shipper-cache/index_20107/fake/1737280800-loki-0.tsdb.gz",
        det_bytes("loki-tsdb-old", 900),
        mtime=now - 86_400,
    )
    vol.file("wal/00000042", _segment("loki-wal", 4_000, 32_768), mtime=now)
    vol.file("wal/checkpoint.000041/00000000", _segment("loki-ckpt", 1_000, 32_768), mtime=now - 1_800)
    vol.dir("compactor")
    vol.dir("rules")
    return vol
