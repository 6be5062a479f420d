"""Read a DNS zone the way the cutover needs it: answers with TTLs, external-dns ownership, whole-zone diffs.

The cutover must prove two things about DNS: the moved hosts answer with the new address, and no
record of another owner changed. Answers come from the authoritative server (``dns_server``) so no
resolver cache hides a change; the whole zone comes by AXFR signed with TSIG when the operator gives
a key (the secret only from the environment). external-dns marks what it owns with TXT records
``heritage=external-dns,external-dns/owner=<id>,…`` at ``a-<host>`` (and the older ``<host>``); the
owner of each record is read from them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.tsigkeyring
import dns.zone

from k3smig_lib.errors import TargetError

HERITAGE = "heritage=external-dns"


@dataclass(frozen=True)
class Server:
    """An authoritative DNS server (``host:port``)."""

    host: str
    port: int = 53

    @classmethod
    def parse(cls, text: str) -> Server:
        """``127.0.0.1:5353`` or ``ns1.example.org`` (port 53)."""
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "53")
        return cls(host or text, int(port or 53))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, order=True)
class Record:
    """One resource record set entry (name without the trailing dot)."""

    name: str
    rtype: str
    value: str
    ttl: int


def _fail(what: str, server: Server, err: Exception) -> TargetError:
    return TargetError(f"DNS {what} from {server} failed: {type(err).__name__}: {err}",
                       fix="check dns_server (host:port of the zone's authoritative server) and that it answers")


def query(server: Server, name: str, rtype: str = "A", timeout: float = 3.0) -> list[Record]:
    """The authoritative answer for ``name``/``rtype`` (empty when the name or type does not exist).

    Raises:
        TargetError: the server does not answer.
    """
    msg = dns.message.make_query(name.rstrip(".") + ".", rtype)
    try:
        answer = dns.query.udp(msg, server.host, port=server.port, timeout=timeout)
    except (OSError, dns.exception.DNSException) as e:
        raise _fail(f"query {name} {rtype}", server, e) from e
    out = []
    for rrset in answer.answer:
        if dns.rdatatype.to_text(rrset.rdtype) != rtype:
            continue
        out += [Record(rrset.name.to_text().rstrip("."), rtype, rd.to_text(), rrset.ttl) for rd in rrset]
    return sorted(out)


def axfr(server: Server, zone: str, key_name: str, secret: str, timeout: float = 10.0) -> list[Record]:
    """Every record of ``zone`` by a TSIG-signed zone transfer (hmac-sha256).

    Raises:
        TargetError: the transfer is refused or the server does not answer (the secret is never shown).
    """
    keyring = dns.tsigkeyring.from_text({key_name: ("hmac-sha256", secret)})
    try:
        xfr = dns.zone.from_xfr(dns.query.xfr(server.host, zone, port=server.port, keyring=keyring,
                                              keyname=key_name, timeout=timeout, lifetime=timeout * 3))
    except (OSError, dns.exception.DNSException) as e:
        raise _fail(f"zone transfer of {zone}", server, e) from e
    out = []
    for name, rdataset in xfr.iterate_rdatasets():
        fqdn = name.derelativize(dns.name.from_text(zone)).to_text().rstrip(".")
        rtype = dns.rdatatype.to_text(rdataset.rdtype)
        out += [Record(fqdn, rtype, rd.to_text(), rdataset.ttl) for rd in rdataset]
    return sorted(out)


def labels(txt: str) -> dict[str, str]:
    """external-dns labels of one TXT value (``{"owner": "k3smig", "resource": "ingress/ns/name"}``)."""
    text = txt.strip('"')
    if not text.startswith(HERITAGE):
        return {}
    out = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key.startswith("external-dns/"):
            out[key.removeprefix("external-dns/")] = value
    return out


def owners(records: Iterable[Record]) -> dict[str, str]:
    """Owner id per host, from the ownership TXT records (``a-<host>``, ``cname-<host>`` or ``<host>``)."""
    found: dict[str, str] = {}
    for r in records:
        if r.rtype != "TXT":
            continue
        owner = labels(r.value).get("owner")
        if not owner:
            continue
        first, _, rest = r.name.partition(".")
        host = r.name
        for prefix in ("a-", "aaaa-", "cname-"):
            if first.startswith(prefix):
                host = f"{first.removeprefix(prefix)}.{rest}"
        found.setdefault(host, owner)
    return found


def owner_of(records: Iterable[Record], host: str) -> str:
    """The external-dns owner of ``host`` ('' when no ownership record names it)."""
    return owners(records).get(host.rstrip("."), "")


def changed(before: Iterable[Record], after: Iterable[Record]) -> set[str]:
    """Names whose records differ between two zone reads (added, removed or changed; SOA ignored)."""
    a = {r for r in before if r.rtype != "SOA"}
    b = {r for r in after if r.rtype != "SOA"}
    return {r.name for r in a ^ b}


def belongs_to(name: str, hosts: Iterable[str]) -> bool:
    """True when ``name`` is one of ``hosts`` or one of their ownership records."""
    first, _, rest = name.partition(".")
    bare = name
    for prefix in ("a-", "aaaa-", "cname-"):
        if first.startswith(prefix):
            bare = f"{first.removeprefix(prefix)}.{rest}"
    return name in hosts or bare in hosts
