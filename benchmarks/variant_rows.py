"""One table row per attack variant: protect some dev photos, measure each with `verify`
as-is and after the instagram preset, and report medians (coarse_to_fine.py and
e2e_targets.py build their tables with it)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from efficacy import load_rgb, to_image

from cloak.models import ALL_MODEL_NAMES
from cloak.verify import verify_images

HEADER = ["| variant | PSNR | as-is damage | instagram damage | s/photo |",
          "|---|---|---|---|---|"]


def variant_row(label: str, paths: list[Path], protect: Callable[[np.ndarray], object],
                clean_cache: dict) -> str:
    """`protect(rgb)` (rgb (H, W, 3) float32 in [0, 1]) -> a result with `.rgb`, for each
    photo in `paths`; returns the row of medians (damage in dB for each autoencoder).
    `clean_cache` (a dict kept across variants) measures each original once."""
    psnr, secs = [], []
    asis, insta = ({m: [] for m in ALL_MODEL_NAMES} for _ in range(2))
    for path in paths:
        original = load_rgb(path)
        start = time.perf_counter()
        result = protect(np.asarray(original, dtype=np.float32) / 255)
        secs.append(time.perf_counter() - start)
        v = verify_images(original, to_image(result.rgb), ("as-is", "instagram"),
                          clean_cache=clean_cache.setdefault(path.name, {}))
        psnr.append(v.psnr)
        for m in ALL_MODEL_NAMES:
            asis[m].append(v.channels[0].damage_db[m])
            insta[m].append(v.channels[1].damage_db[m])
        print(label, path.name, f"psnr {v.psnr:.2f} {secs[-1]:.1f}s",
              {m: round(asis[m][-1], 2) for m in ALL_MODEL_NAMES}, flush=True)
    med = statistics.median
    row = (f"| {label} | {med(psnr):.1f} | "
           + "/".join(f"{med(asis[m]):.1f}" for m in ALL_MODEL_NAMES) + " | "
           + "/".join(f"{med(insta[m]):.1f}" for m in ALL_MODEL_NAMES)
           + f" | {med(secs):.1f} |")
    print(row, flush=True)
    return row


def write_table(out: Path, title: str, command: str, threads: int, paths: list[Path],
                rows: list[str]) -> None:
    """Write the markdown table of `rows` to `out`, and print it."""
    table = "\n".join([
        f"# {title}", "",
        f"Command: `{command}`; {threads} threads.", "",
        f"Photos: {', '.join(p.name for p in paths)}. Medians; damage in dB for "
        + " / ".join(ALL_MODEL_NAMES) + ".", "",
        *HEADER, *rows, ""])
    out.write_text(table)
    print(table)
