"""nbval runs the golden notebooks in order in one run folder: start from empty run/target folders."""

import shutil
from pathlib import Path

HERE = Path(__file__).parent


def pytest_sessionstart(session):
    for name in ("runs", "targets"):
        shutil.rmtree(HERE / name, ignore_errors=True)
