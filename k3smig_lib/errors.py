"""One error hierarchy for the whole library.

Every adapter wraps third-party exceptions exactly once (``raise ... from e``) into one of these
classes, so a notebook cell fails with a message that names the object and the fix instead of a
traceback from deep inside a library. ``RetryableError`` marks conditions a bounded retry may cure
(429, 503, connection reset); ``FatalError`` marks everything a retry will not cure.
"""

from __future__ import annotations

#: Longest message kept: enough for a file path, an object and what is wrong with it (a 256 cut lost the
#: "what" after a long temporary path); API payloads are cut shorter where they are read (k8s.errors).
_MAX_DETAIL = 512


def _cut(text: str) -> str:
    """Cut messages so they never flood a report (and rarely carry object bodies)."""
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


class K3sMigError(Exception):
    """Root of every error k3smig raises on purpose.

    Args:
        message: what went wrong, written for the operator.
        fix: how to fix it; rendered as "to fix this, …".
        resource: ``kind/name`` of the object concerned, when there is one.
        namespace: namespace of that object.
        phase: notebook phase (``"40"``) where the error happened.
    """

    def __init__(
        self,
        message: str,
        *,
        fix: str = "",
        resource: str = "",
        namespace: str = "",
        phase: str = "",
    ) -> None:
        self.message = message
        self.fix = fix
        self.resource = resource
        self.namespace = namespace
        self.phase = phase
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.resource:
            where = f"{self.resource}" + (f" in ns {self.namespace}" if self.namespace else "") + ": "
        text = f"{where}{_cut(self.message)}"
        if self.fix:
            text += f" (to fix this, {self.fix})"
        return text


class RetryableError(K3sMigError):
    """A transient failure: retried with backoff, then surfaced if it persists."""


class FatalError(K3sMigError):
    """A failure no retry cures: bad input, a conflict, a failed proof."""


class UsageError(FatalError):
    """The command was called wrongly: a bad argument or parameter, a file that does not exist.

    The ``k3smig`` command exits with code 2 for these (1 for every other failure).
    """


class ParameterError(UsageError):
    """A parameters file or notebook parameter is wrong (unknown, misspelled, secret-looking)."""


class SourceError(FatalError):
    """The source (snapshot folder or live cluster) cannot be read as asked."""


class TargetError(FatalError):
    """The target (directory or live cluster) refused a write or cannot be read."""


class ConflictError(TargetError):
    """An object exists on the target and differs from what would be applied."""


class UnsafePathError(FatalError):
    """A write would leave its root folder (``..``, an absolute part, a symlinked folder on the way)."""


class WriteError(FatalError):
    """A file could not be written completely (disk full, permissions); nothing half-written was left."""


class InvalidNameError(SourceError):
    """A name that becomes a path part breaks Kubernetes' own naming rules (read from a hostile source?)."""


class LimitError(FatalError):
    """An input is larger than a stated limit (file size, YAML expansion, archive bytes)."""


class UnsafeArchiveError(FatalError):
    """A volume archive tried to escape its volume (``..``, absolute path, link out, device)."""


class DataMismatchError(FatalError):
    """Source and target volume manifests differ: something was lost, added or changed."""


class AppCheckError(FatalError):
    """An application check failed (SQLite integrity, dashboards, Prometheus config)."""


class SecretLeakError(FatalError):
    """A secret value was found in a run artifact; the run is quarantined."""


class LedgerError(FatalError):
    """The run ledger does not match the files of the run (tampering or corruption)."""


class ToolMissingError(FatalError):
    """An external tool (tofu, ansible-playbook, promtool, a sandbox binary) is not available."""


class PhaseError(FatalError):
    """A phase notebook failed; carries the phase and the failing cell."""
