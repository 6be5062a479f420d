"""Pure domain logic: no cluster clients, no subprocesses of external tools, no notebooks."""
