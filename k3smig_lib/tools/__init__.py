"""Adapters around the external command-line tools the application checks run (``promtool``).

``k3smig_lib.core`` stays free of subprocesses (an import-linter contract checks it): what runs a
tool lives here, and its pure fallbacks stay in core.
"""
