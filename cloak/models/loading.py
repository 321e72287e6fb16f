"""Loading the tiny autoencoders: verified weights, one frozen model per process and
folder set (the package's torch-using half; `cloak.models` imports it on first use)."""

from __future__ import annotations

import threading

import torch

from ..errors import ModelError
from .fetch import DownloadProgress, downloads_off
from .registry import MODELS, get_spec
from .taesd import TinyAutoencoder
from .weights import (
    WeightsMissing,
    fallback_dir,
    load_verified,
    missing_message,
    missing_stems,
    one_note_for_files_elsewhere,
    search_dirs,
)

_cache: dict[tuple, TinyAutoencoder] = {}
_lock = threading.Lock()


def load_autoencoder(name: str, model_dir=None, device: torch.device | str = "cpu",
                     allow_download: bool = True,
                     progress: DownloadProgress | None = None) -> TinyAutoencoder:
    """A frozen, eval-mode autoencoder with verified pretrained weights, cached per process
    for the folders its weights are looked up in (`model_dir`, then $CLOAK_MODEL_DIR, then
    the user cache), so changing $CLOAK_MODEL_DIR loads from the new folder."""
    spec = get_spec(name)
    # the temporary folder for downloads always in the key: it is searched only once it
    # exists, and a first download made it, which must not read the weights in again
    folders = [*search_dirs(model_dir), fallback_dir()]
    key = (name, tuple(dict.fromkeys(str(d.absolute()) for d in folders)), str(device))
    with _lock:
        if key not in _cache:
            with torch.device("meta"):  # no random initialisation (the caller's random
                # state stays as it was): both parts are replaced by loaded ones
                model = TinyAutoencoder(spec.latent_channels, spec.use_pool)
            model.encoder = load_verified(spec, "encoder", model_dir, allow_download, progress)
            model.decoder = load_verified(spec, "decoder", model_dir, allow_download, progress)
            # channels_last: measured ~3x faster per attack step on CPU with bf16
            # (benchmarks/levers.md); inputs keep their own layout and work either way.
            _cache[key] = model.to(device, memory_format=torch.channels_last).eval(
            ).requires_grad_(False)
        return _cache[key]


def load_autoencoders(names, model_dir=None, device: torch.device | str = "cpu",
                      allow_download: bool = True,
                      progress: DownloadProgress | None = None) -> list[TinyAutoencoder]:
    """load_autoencoder for each of `names`, in order. With downloads off or no network,
    one ModelError names every missing file at once (not one a run, as the user puts
    each in place)."""
    models = []
    with one_note_for_files_elsewhere(names, model_dir, allow_download):
        for name in names:
            try:
                models.append(load_autoencoder(name, model_dir, device, allow_download,
                                               progress))
            except WeightsMissing as exc:
                stems = missing_stems(tuple(names), model_dir) if exc.offline else []
                if len(stems) < 2:
                    raise
                raise ModelError(missing_message(MODELS[name], "encoder", exc.why,
                                                 model_dir, stems)) from exc
            except ModelError as exc:  # a damaged file, say: with downloads off, the files
                # missing too are named here (one_note_for_files_elsewhere leaves them to
                # the error), so the user puts everything right at once
                if allow_download and not downloads_off():
                    raise
                stems = missing_stems(tuple(n for n in names if n in MODELS), model_dir)
                if not stems:
                    raise
                raise ModelError(f"{exc}; also missing, with downloads off: "
                                 f"{', '.join(stems)}") from exc
    return models
