"""cloak: protect photos against latent-diffusion editing before you post them."""

from .config import PRESETS, ProtectConfig
from .errors import (
                     Cancelled,
                     CloakError,
                     ConfigError,
                     ModelError,
                     OutputError,
                     UnsupportedImageError,
)
from .report import Report

__all__ = ["PRESETS", "Cancelled", "CloakError", "ConfigError", "ModelError", "OutputError",
           "ProtectConfig", "Report", "UnsupportedImageError", "protect", "protect_file"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """protect and protect_file load torch: imported on first use, so `import cloak` (and
    the CLI's --help) does not wait for it."""
    if name in ("protect", "protect_file"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

