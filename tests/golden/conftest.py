"""nbval runs the golden notebooks in order in one run folder: start from empty run/target folders.

The kernels run with a fixed, public fingerprint key (as the runner gives every run one key): the secret
fingerprints and key ids in the golden notebooks are then the same on every machine and compared like any
other output, so a change in how a value is fingerprinted shows up as a diff. scripts/make_golden.py
reads ``GOLDEN_RUN_KEY`` from here.
"""

import os
import shutil
from pathlib import Path

HERE = Path(__file__).parent
#: Test-only key, public on purpose; never a real run's key (the runner makes one per run, never on disk).
GOLDEN_RUN_KEY = b"k3smig golden notebooks: public!".hex()


def pytest_sessionstart(session):
    os.environ["K3SMIG_RUN_KEY"] = GOLDEN_RUN_KEY  # set before nbval starts the kernels, which inherit it
    for name in ("runs", "targets"):
        shutil.rmtree(HERE / name, ignore_errors=True)
