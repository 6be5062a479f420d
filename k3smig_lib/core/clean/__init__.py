"""The cleaner of the export phase: strip, rewrite and keep, with a rule ID for every change.

The rules and their order are documented in ``docs/cleaning-rules.md`` (generated from ``RULES``);
:data:`RULES` is the catalogue, :func:`clean_objects` the pipeline. Modules: ``whiteouts`` (W*),
``metadata`` (M*, S1), ``services`` and ``pods`` and ``kinds`` (K*), ``remaps`` (T*), ``keep`` (KEEP*),
``facts`` (§1 step 3).
"""

from k3smig_lib.core.clean.engine import clean_object, clean_objects
from k3smig_lib.core.clean.model import Change, CleanedObject, CleanOptions, CleanReport
from k3smig_lib.core.clean.rules import RULES, Rule

__all__ = [
    "RULES", "Change", "CleanOptions", "CleanReport", "CleanedObject", "Rule",
    "clean_object", "clean_objects",
]
