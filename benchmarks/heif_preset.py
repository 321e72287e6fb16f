"""Which x265 speed preset cloak writes HEIC copies with: seconds, size, fidelity, damage.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/heif_preset.py \
        [--photos d19,d10,d18,d25] [--presets medium,ultrafast] [--table out.md]
    CLOAK_MODEL_DIR=../shared/models python benchmarks/heif_preset.py --whole [--repeats 2]

Each photo is protected once at `--strength fast` (in memory), then that protected copy is
saved as HEIC the way cloak saves it (quality 95, 4:4:4) with each preset and read back.
Per preset: the encode's seconds, the file's size, the PSNR and largest change of the
saved copy against the unsaved one (what the encoder itself took away), and the damage
as the photo is (dB, taesd / taesdxl / taef1 / taef2, verify's measure) of the saved copy.

`--whole`: a 12 MP HEIC (d25 resized to 4032x3024) protected end to end by
`cloak.api.protect_file` at `--strength fast` (load, attack, save), the presets taking
turns, `--repeats` runs each; prints each run and the medians.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import dev_photos, load_rgb
from lossless_effort import PHOTOS, add_row, protected_at_fast, write_table

from cloak import ProtectConfig
from cloak.io import HEIF_QUALITY
from cloak.verify import verify_images

pillow_heif.register_heif_opener()


def saved_as_heic(image: Image.Image, preset: str) -> tuple[Image.Image, float, int]:
    """`image` written as cloak writes a HEIC (but with x265 `preset`) and read back:
    (the decoded RGB copy, seconds the encode took, bytes)."""
    buffer = io.BytesIO()
    started = time.perf_counter()
    image.save(buffer, "HEIF", quality=HEIF_QUALITY, chroma=444,
               enc_params={"preset": preset})
    seconds = time.perf_counter() - started
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), seconds, len(buffer.getvalue())


def fmt(damage: dict[str, float]) -> str:
    return " / ".join(f"{v:.2f}" for v in damage.values())


def whole_photo(presets: list[str], repeats: int) -> None:
    """protect_file on a 12 MP HEIC with each preset in turn (see the module docstring)."""
    import cloak.io
    from cloak.api import protect_file

    folder = Path(tempfile.mkdtemp(prefix="heif-preset-"))
    src = folder / "IMG_12mp.heic"
    load_rgb(dev_photos(PHOTOS, ["d25"])[0]).resize((4032, 3024), Image.LANCZOS).save(
        src, quality=90)
    config = ProtectConfig(strength="fast", measure=False)
    protect_file(src, folder / "warm-up.heic", config)  # models loaded, caches warm
    seconds: dict[str, list[float]] = {p: [] for p in presets}
    for run in range(repeats):
        for preset in presets:
            cloak.io.HEIF_PRESET = preset
            started = time.perf_counter()
            protect_file(src, folder / f"{preset}-{run}.heic", config)
            seconds[preset].append(time.perf_counter() - started)
            print(f"{preset}: {seconds[preset][-1]:.2f} s", flush=True)
    for preset, runs in seconds.items():
        print(f"median {preset}: {statistics.median(runs):.2f} s ({len(runs)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default="d19,d10,d18,d25",
                        help="dev photo name prefixes, comma-separated")
    parser.add_argument("--presets", default="medium,ultrafast")
    parser.add_argument("--table", type=Path, help="also write the table here (markdown)")
    parser.add_argument("--whole", action="store_true",
                        help="time a whole 12 MP HEIC protect per preset instead")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    if args.whole:
        whole_photo(presets, args.repeats)
        return
    rows = [("| photo | size | preset | encode s | MB | PSNR vs unsaved | largest change /255 "
             "| damage as saved (unsaved) |"), "|---|---|---|---|---|---|---|---|"]
    for path, original, protected in protected_at_fast(args.photos):
        cache: dict = {}
        unsaved = verify_images(original, protected, ("as-is",), clean_cache=cache,
                                figures=False).as_is.damage_db
        for preset in presets:
            back, seconds, size = saved_as_heic(protected, preset)
            change = np.asarray(back, np.float64) - np.asarray(protected, np.float64)
            psnr = 10 * np.log10(255 ** 2 / max((change ** 2).mean(), 1e-12))
            damage = verify_images(original, back, ("as-is",), clean_cache=cache,
                                   figures=False).as_is.damage_db
            add_row(rows, f"| {path.name} | {original.width}x{original.height} | {preset} | "
                          f"{seconds:.2f} | {size / 1e6:.2f} | {psnr:.2f} | "
                          f"{np.abs(change).max():.0f} | {fmt(damage)} ({fmt(unsaved)}) |")
    write_table(rows, args.table)

if __name__ == "__main__":
    main()
