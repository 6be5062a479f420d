"""One volume transfer between the sandbox clusters, run in its own process so its peak RSS can be measured.

Usage: python transfer_run.py KUBECONFIG SOURCE_CONTEXT TARGET_CONTEXT NAMESPACE CLAIM
Prints one JSON line: bytes sent, seconds, proven.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import ExitStack

from k3smig_lib.backends.base import VolumeRef
from k3smig_lib.backends.live_source import LiveSource
from k3smig_lib.backends.live_target import LiveTarget
from k3smig_lib.core.ownership import plan_ownership
from k3smig_lib.k8s.client import ClusterRef
from k3smig_lib.phases._datapath import copy_pass, prove


def main(argv: list[str]) -> int:
    kubeconfig, source_ctx, target_ctx, ns, claim = argv
    volume = VolumeRef(ns, claim)
    source = LiveSource(ClusterRef(kubeconfig, source_ctx, "source"), run_id="bench")
    target = LiveTarget(ClusterRef(kubeconfig, target_ctx, "target"), run_id="bench")
    with ExitStack() as stack:
        src = stack.enter_context(source.volume(volume))
        dst = stack.enter_context(target.volume(volume))
        manifest = src.manifest()
        plan = plan_ownership(volume.id, manifest, None)
        start = time.perf_counter()
        record = copy_pass(src, dst, plan, name="bench", source=manifest)
        seconds = time.perf_counter() - start
        proven = prove(src, dst, plan, manifest).proven
    print(json.dumps({"bytes": record.bytes_sent, "seconds": seconds, "proven": proven}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
