"""cloak: protect photos against latent-diffusion editing before you post them."""

from .api import protect, protect_file
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

