"""The cutover of phase 80: DNS read and planned, the handover executed, and its reverse for rollback.

Two external-dns instances share one zone. Each marks its records with a TXT owner id, and until
cutover the target's runs ``--policy upsert-only``: it can create records nobody has but never
update or delete one it does not own. At cutover, in this order (each change recorded on the object
it changes, :mod:`k3smig_lib.k8s.handover`):

1. the source's GitLab Runner stops, then the target's (held at 0 by phase 60) starts: one
   registration, one runner;
2. the source's external-dns is scaled to 0 (its replicas recorded) and its pods waited out;
3. the target's external-dns switches to ``--policy sync`` with ``--migrate-from-txt-owner`` set to the
   source's owner id, which hands it the source's records. That flag is dangerous as shipped:
   external-dns then treats *every* record of the old owner as its own and deletes those it does not
   publish (kubernetes-sigs/external-dns#5993). The guard: a ``--regex-domain-filter`` matching exactly
   the planned hosts and their ownership records, so no other record is even visible to it;
4. the runbook waits until every host answers with the new address and the target owns it, then
   drops the migration flag, and proves from two zone reads that no other name changed.

Rollback runs the same steps backwards with the owners swapped.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from k3smig_lib.core.dnszone import Record, Server, axfr, belongs_to, changed, owners, query
from k3smig_lib.errors import TargetError
from k3smig_lib.k8s import handover

if TYPE_CHECKING:  # the Kubernetes client is imported only when a cutover really runs
    from k3smig_lib.k8s.client import Kube

TSIG_ENV = "K3SMIG_DNS_TSIG_SECRET"


@dataclass
class Handover:
    """Everything one direction of the handover needs (cutover: source → target; rollback: reversed)."""

    hosts: list[str]
    zone: str
    server: Server
    key_name: str
    external_dns: tuple[str, str]
    steps: list[handover.Step] = field(default_factory=list)

    def read_zone(self) -> list[Record]:
        """The whole zone (AXFR with TSIG) when a key is configured, else the planned hosts only."""
        secret = os.environ.get(TSIG_ENV, "")
        if self.key_name and secret:
            return axfr(self.server, self.zone, self.key_name, secret)
        out: list[Record] = []
        for host in self.hosts:
            out += query(self.server, host, "A")
            first, _, rest = host.partition(".")
            out += query(self.server, f"a-{first}.{rest}", "TXT") + query(self.server, host, "TXT")
        return sorted(out)

    def regex(self) -> str:
        """``--regex-domain-filter`` matching the planned hosts and their ownership TXT names only."""
        firsts = sorted({re.escape(h.partition(".")[0]) for h in self.hosts})
        rests = sorted({re.escape(h.partition(".")[2]) for h in self.hosts})
        return rf"^((a|aaaa|cname)-)?({'|'.join(firsts)})\.({'|'.join(rests)})$"

    def note(self, step: handover.Step) -> handover.Step:
        """Keep ``step`` for the report and return it."""
        self.steps.append(step)
        return step


def addresses(records: Iterable[Record], host: str) -> list[str]:
    """A values of ``host``."""
    return sorted(r.value for r in records if r.name == host and r.rtype == "A")


def foreign_changes(before: list[Record], after: list[Record], hosts: list[str]) -> list[str]:
    """Names outside the planned hosts that changed between two zone reads (must be empty)."""
    return sorted(n for n in changed(before, after) if not belongs_to(n, hosts))


def outside_plan(records: list[Record], owner: str, hosts: list[str]) -> list[str]:
    """Hosts ``owner`` owns that the plan does not move: what the #5993 bug would delete without the guard."""
    return sorted(h for h, o in owners(records).items() if o == owner and h not in hosts)


def wait_for(check: Callable[[], tuple[bool, str]], timeout: float, what: str,
             sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> str:
    """Poll ``check`` (ok, detail) until ok; return the last detail.

    Raises:
        TargetError: not reached within ``timeout`` seconds; the message has the last detail.
    """
    end = clock() + timeout
    while True:
        ok, detail = check()
        if ok:
            return detail
        if clock() >= end:
            raise TargetError(f"{what} not reached after {timeout:g}s: {detail}",
                              fix="read the external-dns logs of the cluster that should publish; then re-run "
                                  "(every step is idempotent) or roll back with `k3smig rollback runs/<id>`")
        sleep(1.0)


def converged(h: Handover, want: dict[str, list[str]], owner: str) -> Callable[[], tuple[bool, str]]:
    """Check: every host answers ``want[host]`` and is owned by ``owner``."""
    def check() -> tuple[bool, str]:
        zone = h.read_zone()
        own = owners(zone)
        wrong = [f"{host}: A {addresses(zone, host) or 'none'} owner {own.get(host, 'none')!r}"
                 for host in h.hosts if addresses(zone, host) != sorted(want[host]) or own.get(host) != owner]
        return not wrong, "; ".join(wrong) or "every host converged"
    return check


def switch(h: Handover, giver: tuple[Kube, str], taker: tuple[Kube, str], want: dict[str, list[str]],
           timeout: float, *, taker_policy: str = "sync") -> list[Record]:
    """Hand the hosts' records from ``giver`` (kube, owner id) to ``taker``; return the zone afterwards.

    Raises:
        TargetError: DNS did not converge in time, or a record outside the plan changed.
    """
    from k3smig_lib.k8s.quiesce import wait_stopped  # imports the Kubernetes client: only a real cutover does

    (gkube, gowner), (tkube, towner) = giver, taker
    gname, tname = gkube.side, tkube.side
    ns, name = h.external_dns
    before = h.read_zone()
    h.note(handover.stop(gkube, gname, "Deployment", ns, name))
    wait_stopped(gkube, "Deployment", ns, name, timeout=timeout)
    h.note(handover.reconfigure(tkube, tname, ns, name, {
        "policy": [taker_policy], "migrate-from-txt-owner": [gowner], "regex-domain-filter": [h.regex()]}))
    if handover.get(tkube, "Deployment", ns, name) is not None:
        h.note(handover.start(tkube, tname, "Deployment", ns, name))
    detail = wait_for(converged(h, want, towner), timeout, f"DNS handover to {towner}")
    h.note(handover.Step("dns", ", ".join(h.hosts), "converged", f"owner {gowner}", f"owner {towner}: {detail}"))
    h.note(handover.reconfigure(tkube, tname, ns, name, {"migrate-from-txt-owner": []}))
    after = h.read_zone()
    foreign = foreign_changes(before, after, h.hosts)
    if foreign:
        raise TargetError(f"records outside the plan changed during the handover: {', '.join(foreign)}",
                          fix="restore them from the zone snapshot in the run folder and report the bug")
    h.note(handover.Step("dns", "zone", "foreign records unchanged", f"{len(before)} records",
                         f"{len(after)} records, only {', '.join(h.hosts)} changed"))
    return after
