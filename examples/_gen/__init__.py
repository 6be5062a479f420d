"""Building blocks of the bundled example cluster (``examples/generate.py``).

Everything here is deterministic: identities come from uuid5 of the object's name, timestamps are
fixed strings, secret values are derived from sha256 of their name, and RSA keys are built from
primes searched with a seeded generator. Running the generator twice gives the same bytes.
"""
