"""cloak: protect photos against latent-diffusion editing before you post them."""

from .config import PRESETS, ProtectConfig
from .errors import (
                     Cancelled,
                     CloakError,
                     ConfigError,
                     ModelError,
                     OutputError,
                     OutputExistsError,
                     UnsupportedImageError,
)
from .report import Report

__all__ = ["PRESETS", "Cancelled", "CloakError", "ConfigError", "ModelError", "OutputError",
           "OutputExistsError", "ProtectConfig", "Report", "UnsupportedImageError", "protect",
           "protect_file", "verify_files"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """protect, protect_file and verify_files load torch: imported on first use, so
    `import cloak` (and the CLI's --help) does not wait for it."""
    if name in ("protect", "protect_file"):
        from . import api

        return getattr(api, name)
    if name == "verify_files":
        from .compare import verify_files

        return verify_files
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazily imported names too (tab completion shows cloak.protect)."""
    return sorted({*globals(), *__all__})

