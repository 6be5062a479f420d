"""The one logger of the library; configuration is left to the caller (CLI or notebook)."""

import logging

logger = logging.getLogger("k3smig")
