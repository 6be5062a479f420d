"""Ports and their implementations: where objects come from and go to, and where volume bytes live."""
