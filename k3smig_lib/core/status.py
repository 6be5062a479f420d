"""The reports' one status vocabulary.

Shared by the phases (:mod:`k3smig_lib.phases.catalog` re-exports it) and the report tables
(:mod:`k3smig_lib.core.htmltable`), which the layers keep below the phases.
"""

from __future__ import annotations

from enum import StrEnum


class ReportStatus(StrEnum):
    """The reports' one vocabulary for an outcome (a phase, a check, a release).

    A ``StrEnum``: each member is its string, so JSON, CSV and tables show the same text as before.

    Examples:
        >>> ReportStatus.NOT_RUN == "NOT RUN", f"{ReportStatus.FAIL}: reason"
        (True, 'FAIL: reason')
    """

    PASS = "PASS"
    FAIL = "FAIL"
    DEGRADED = "DEGRADED"
    NOT_RUN = "NOT RUN"

    @classmethod
    def of(cls, ok: bool) -> ReportStatus:
        """PASS or FAIL."""
        return cls.PASS if ok else cls.FAIL
