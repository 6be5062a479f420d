"""Running the phase notebooks in order and keeping the audit trail (ledger, reports, index)."""
