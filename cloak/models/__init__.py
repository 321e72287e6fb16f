"""The tiny autoencoders: registry, architecture and weight loading.

The registry (names, latent channels) loads without torch, so the CLI's --help and the
settings' checks start in a fraction of a second; the loaders and the architecture
(cloak/models/loading.py, taesd.py) are imported on first use."""

from __future__ import annotations

from .registry import ALL_MODEL_NAMES, MODELS, ModelSpec, get_spec

__all__ = ["ALL_MODEL_NAMES", "MODELS", "ModelSpec", "TinyAutoencoder", "get_spec",
           "load_autoencoder", "load_autoencoders"]

_LOADED_ON_USE = {"load_autoencoder": "loading", "load_autoencoders": "loading",
                  "TinyAutoencoder": "taesd"}


def __getattr__(name: str):
    if name in _LOADED_ON_USE:
        import importlib

        return getattr(importlib.import_module(f".{_LOADED_ON_USE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The names loaded on first use too (tab completion shows them)."""
    return sorted({*globals(), *__all__})
