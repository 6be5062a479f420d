"""Fixtures for the infrastructure tests; helpers live in infra_helpers (a unique module name)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from infra_helpers import molecule_image, terraform_copy, tofu, tofu_on_path  # noqa: E402

__all__ = ["molecule_image", "terraform_copy", "tofu", "tofu_on_path"]
