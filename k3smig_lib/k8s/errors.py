"""Translate ``kubernetes``/``urllib3`` exceptions into the k3smig hierarchy, exactly once.

Every API call of :mod:`k3smig_lib.k8s` goes through :func:`translate`: transient conditions (429,
5xx, connection refused/reset, timeouts) become :class:`ApiRetryableError`, which the retry loop
understands; everything else becomes a :class:`~k3smig_lib.errors.FatalError` subclass chosen by
the side of the call (``SourceError`` / ``TargetError``), or ``ConflictError`` for 409.

Messages carry the HTTP status, the reason phrase and the object's name — never the response body,
which can echo an object (a Secret's data included). The original exception stays reachable as
``__cause__`` (``raise translate(e, call) from e``), and :func:`status_of` reads the status back.
Code that handles statuses itself catches :data:`ApiError`.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from k3smig_lib.errors import ConflictError, FatalError, K3sMigError, RetryableError, SourceError, TargetError

#: The client's HTTP error (``status``, ``reason``, ``headers``), named here for code that branches on a
#: status itself instead of calling :func:`translate` (the sandbox: 409 on a create means the object is
#: already there, 404 on a delete that it is gone), so no module outside ``k3smig_lib.k8s`` imports
#: ``kubernetes``. The dynamic client's errors are subclasses of it.
ApiError = ApiException

_MAX = 256
#: Statuses a retry may cure: throttling and server-side trouble.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_TRANSPORT_ERRORS = (
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.TimeoutError,
    urllib3.exceptions.MaxRetryError,
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True)
class ApiCall:
    """What a call was doing, so an error can say which verb on which object failed.

    Attributes:
        verb: Kubernetes verb (``list``, ``get``, ``create``, ``patch``…).
        resource: plural resource name (``secrets``), or an URL path for non-resource calls.
        group: API group (``""`` for core).
        namespace: namespace of the call, ``""`` for cluster-wide.
        name: object name, ``""`` for collections.
        side: ``source`` or ``target`` (picks ``SourceError`` or ``TargetError``).
        context: kubeconfig context, named in credential errors.
        subresource: ``exec``, ``scale``, ``status``… (RBAC grants ``pods/exec``, not ``pods``).
    """

    verb: str
    resource: str
    group: str = ""
    namespace: str = ""
    name: str = ""
    side: str = ""
    context: str = ""
    subresource: str = ""

    @property
    def full_resource(self) -> str:
        """``resource.group`` as kubectl spells it (``deployments.apps``)."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def label(self) -> str:
        """Short phrase for messages: ``list secrets in ns shop`` / ``get deployments.apps/web``."""
        target = self.full_resource + (f"/{self.name}" if self.name else "")
        target += f"/{self.subresource}" if self.subresource else ""
        where = f" in ns {self.namespace}" if self.namespace else ""
        side = f"{self.side} cluster: " if self.side else ""
        return f"{side}{self.verb} {target}{where}"


class ApiRetryableError(RetryableError):
    """A transient API failure, with what the retry loop needs to wait and to report.

    Attributes:
        status: HTTP status (0 for a transport error: refused, reset, timed out).
        retry_after: seconds the server asked to wait (``Retry-After``), or None.
        side: side of the call, so the final error after the last retry has the right class.
    """

    def __init__(
        self, message: str, *, status: int, retry_after: float | None = None, side: str = "", **kw: str
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        self.side = side
        super().__init__(message, **kw)


def cut(text: str) -> str:
    """Cut ``text`` to 256 characters (API payloads and reasons can be long)."""
    return text if len(text) <= _MAX else text[: _MAX - 1] + "…"


def fatal_class(side: str) -> type[FatalError]:
    """``SourceError`` for the source, ``TargetError`` for the target, ``FatalError`` otherwise."""
    return {"source": SourceError, "target": TargetError}.get(side, FatalError)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    Examples:
        >>> parse_retry_after("3"), parse_retry_after(None), parse_retry_after("soon")
        (3.0, None, None)
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def _header(exc: ApiException, name: str) -> str | None:
    headers = exc.headers or {}
    for key, value in dict(headers).items():
        if str(key).lower() == name.lower():
            return str(value)
    return None


def status_of(err: BaseException | None) -> int:
    """HTTP status behind ``err`` (following ``__cause__``); 0 for transport errors or none.

    Examples:
        >>> status_of(ApiException(status=410, reason="Gone"))
        410
    """
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, ApiRetryableError) and err.status:
            return err.status
        if isinstance(err, ApiException) and isinstance(err.status, int):
            return err.status
        err, seen = err.__cause__, seen + 1
    return 0


_WORD = re.compile(r"^[A-Za-z]{1,64}$")
#: A field path as the API server names it: ``spec.replicas``, ``data[password]``, and server-side
#: apply's ``.spec.template.spec.containers[name="web"].image`` (list-map keys are names, not values).
_FIELD = re.compile(r'^[A-Za-z0-9_.\[\]/="-]{1,120}$')


@dataclass(frozen=True)
class Cause:
    """One ``Status.details.causes`` entry, reduced to what is safe to show.

    Attributes:
        field: the failing field path (``spec.replicas``), ``""`` when the server named none.
        reason: the machine reason (``FieldValueRequired``, ``FieldManagerConflict``), ``""`` when absent.
    """

    field: str
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.field} ({self.reason})" if self.reason else self.field


def _decode(body: Any) -> dict[str, Any]:
    if isinstance(body, dict):
        return body
    try:
        status = json.loads(body) if isinstance(body, str | bytes) else None
    except ValueError:
        return {}
    return status if isinstance(status, dict) else {}


def status_reason(body: Any) -> str:
    """``Status.reason`` of an error body (an enum: ``Invalid``, ``AlreadyExists``…), ``""`` when absent or odd.

    Examples:
        >>> status_reason({"kind": "Status", "reason": "Conflict"}), status_reason("not json")
        ('Conflict', '')
    """
    reason = str(_decode(body).get("reason") or "")
    return reason if _WORD.match(reason) else ""


def status_causes(body: Any) -> tuple[Cause, ...]:
    """The causes of an error body that name a field: field path and machine reason, never the message.

    A cause's ``message`` can quote the rejected value (a Secret's, say), so it is never kept; a
    field path or reason that does not look like one is dropped too. Order is the server's.

    Examples:
        >>> status_causes({"details": {"causes": [{"field": "spec.replicas", "reason": "FieldValueInvalid",
        ...                                        "message": "Invalid value: -1"}]}})
        (Cause(field='spec.replicas', reason='FieldValueInvalid'),)
    """
    causes = (_decode(body).get("details") or {}).get("causes") or []
    out: list[Cause] = []
    for c in causes:
        if not isinstance(c, dict) or not _FIELD.match(str(c.get("field", ""))):
            continue
        reason = str(c.get("reason") or "")
        cause = Cause(str(c["field"]), reason if _WORD.match(reason) else "")
        if cause not in out:
            out.append(cause)
    return tuple(out)


def safe_detail(body: Any) -> str:
    """The machine reason and failing field paths (each with its cause reason) of a ``Status`` body.

    ``Status.reason`` is an enum (``AlreadyExists``, ``Invalid``, ``Expired``) and causes name field
    paths (``spec.selector``) with a reason (``FieldValueRequired``), which is what tells the operator
    what to fix; the human ``message`` fields can quote values and are dropped, for every kind.

    Examples:
        >>> safe_detail('{"reason": "Invalid", "details": {"causes": [{"field": "metadata.name",'
        ...              ' "reason": "FieldValueRequired", "message": "Required value"}]}}')
        'Invalid; fields metadata.name (FieldValueRequired)'
    """
    reason = status_reason(body)
    parts = [reason] if reason else []
    causes = status_causes(body)
    if causes:
        shown = ", ".join(str(c) for c in causes[:5])
        parts.append("fields " + shown + (f" (+{len(causes) - 5} more)" if len(causes) > 5 else ""))
    return "; ".join(parts)


def scrub(exc: ApiException) -> str:
    """Return the safe detail of ``exc`` and drop its body, so a chained traceback cannot leak it."""
    detail = safe_detail(exc.body)
    exc.body = None
    exc.data = None
    return detail


def _fatal(call: ApiCall, message: str, **kw: str) -> FatalError:
    return fatal_class(call.side)(cut(message), **kw)


def _http(exc: ApiException, detail: str = "") -> str:
    text = f"HTTP {exc.status} {str(exc.reason or '').strip()}".strip()
    return cut(f"{text}: {detail}" if detail else text)


def _forbidden(exc: ApiException, call: ApiCall) -> FatalError:
    resource = call.resource + (f"/{call.subresource}" if call.subresource else "")
    rule = f"apiGroups: [\"{call.group}\"], resources: [\"{resource}\"], verbs: [\"{call.verb}\"]"
    scope = f"a Role in ns {call.namespace}" if call.namespace else "a ClusterRole"
    who = f"the user of context {call.context}" if call.context else "the kubeconfig user"
    check = f"kubectl auth can-i {call.verb} {call.full_resource}"
    check += f" --subresource={call.subresource}" if call.subresource else ""
    check += f" -n {call.namespace}" if call.namespace else ""
    return _fatal(
        call,
        f"{call.label}: not allowed ({_http(exc)})",
        fix=f"grant {who} {scope} rule {{{rule}}} and bind it (check with `{check}`)",
    )


def _unauthorized(exc: ApiException, call: ApiCall) -> FatalError:
    ctx = f"context {call.context}" if call.context else "the kubeconfig"
    return _fatal(
        call,
        f"{call.label}: the API server rejected the credentials of {ctx} ({_http(exc)})",
        fix=f"refresh the token or client certificate of {ctx} (test with `kubectl auth whoami`)",
    )


def _from_status(exc: ApiException, call: ApiCall) -> K3sMigError:
    """Map one HTTP error response (status >= 400, or 0 for TLS failures)."""
    status = int(exc.status or 0)
    detail = scrub(exc)
    what = f"{call.full_resource}/{call.name}" if call.name else call.full_resource
    if status in RETRYABLE_STATUSES:
        retry_after = parse_retry_after(_header(exc, "Retry-After"))
        return ApiRetryableError(f"{call.label}: {_http(exc)}", status=status, retry_after=retry_after,
                                 side=call.side)
    if status == 401:
        return _unauthorized(exc, call)
    if status == 403:
        return _forbidden(exc, call)
    if status == 404:
        side = f" on the {call.side} cluster" if call.side else ""
        return _fatal(call, f"not found{side} ({call.verb}; {_http(exc)})", resource=what, namespace=call.namespace,
                      fix="check the name and namespace, or that the API (CRD) is installed")
    if status == 409:
        return ConflictError(cut(f"{call.label}: conflict ({_http(exc, detail)})"), resource=what,
                             namespace=call.namespace,
                             fix="re-read the object and retry, or resolve the conflict on the target")
    if status == 410:
        return _fatal(call, f"{call.label}: the list snapshot expired ({_http(exc)})", fix="list again from the start")
    if status == 0:
        return _fatal(call, f"{call.label}: TLS or request failure ({str(exc.reason or '')})",
                      fix="check the kubeconfig's server address and certificate authority")
    return _fatal(call, f"{call.label}: refused ({_http(exc, detail)})", fix="read the API server's reason above")


def _transport_reason(exc: BaseException) -> str:
    inner: BaseException = exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        inner = exc.reason
    if isinstance(inner, urllib3.exceptions.ProtocolError) and inner.args and len(inner.args) > 1:
        arg = inner.args[1]
        inner = arg if isinstance(arg, BaseException) else inner
    name = type(inner).__name__
    if isinstance(inner, urllib3.exceptions.NewConnectionError) or isinstance(inner, ConnectionRefusedError):
        return "connection refused"
    if isinstance(inner, ConnectionResetError):
        return "connection reset"
    if isinstance(inner, urllib3.exceptions.TimeoutError | TimeoutError):
        return "timed out"
    return cut(name)


def translate(exc: BaseException, call: ApiCall) -> K3sMigError:
    """Map an exception of one API call to the k3smig error to raise in its place.

    Args:
        exc: what the ``kubernetes`` client or ``urllib3`` raised.
        call: what the call was doing (verb, resource, object, side, context).

    Returns:
        ``ApiRetryableError`` for 429/5xx and transport failures, ``ConflictError`` for 409, otherwise
        ``SourceError``/``TargetError``/``FatalError`` by side. Already-translated errors pass through.

    Examples:
        >>> e = translate(ApiException(status=404, reason="Not Found"),
        ...               ApiCall("get", "secrets", namespace="shop", name="db", side="source"))
        >>> str(e)  # doctest: +ELLIPSIS
        'secrets/db in ns shop: not found on the source cluster (get; HTTP 404 Not Found) (to fix this, ...'
    """
    if isinstance(exc, K3sMigError):
        return exc
    if isinstance(exc, ApiException):
        return _from_status(exc, call)
    if isinstance(exc, _TRANSPORT_ERRORS):
        return ApiRetryableError(f"{call.label}: {_transport_reason(exc)}", status=0, side=call.side)
    return _fatal(call, f"{call.label}: unexpected {type(exc).__name__}: {cut(str(exc))}",
                                  fix="report this as a k3smig bug with the run folder")
