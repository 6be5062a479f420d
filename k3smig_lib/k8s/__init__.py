"""Adapter around the official Kubernetes Python client: explicit contexts, bounded retries, one error mapping."""
