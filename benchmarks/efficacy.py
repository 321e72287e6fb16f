"""Efficacy benchmark: protect + verify over a folder, with the PhotoGuard reference.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/efficacy.py \
        [--photos ../shared/photos/dev] [--limit N] [--presets medium] [--out bench_out]
    CLOAK_MODEL_DIR=../shared/models python benchmarks/efficacy.py --remeasure

Writes a markdown table (one block per preset, plus the reference) to
benchmarks/efficacy.md and the raw figures to <out>/efficacy.json. All numbers come from
this one run. Each protected copy is written as `cloak protect` writes it (the photo's
own format: JPEG as q95 4:4:4, so the encoder's rounding is part of the figures), and
that file is verified. Runs before 2026-12-01 verified the pixels before the save. Damage is dB at long side 512 (see cloak.metrics.damage_db); "worst" is the
minimum over photos.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photoguard import photoguard_encoder_attack

from cloak import ProtectConfig
from cloak.allocator import keep_freed_memory
from cloak.channel_list import CLEANUPS, SOCIAL_PRESETS
from cloak.device import describe, pick_device
from cloak.models import ALL_MODEL_NAMES
from cloak.pipeline import protect_array
from cloak.verify import ChannelResult, photo_image, verify_images

SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".tif", ".tiff", ".bmp"}
CHANNELS = ("as-is", *SOCIAL_PRESETS, *CLEANUPS)
# Issue 4's "worst clean-up" (JPEG, blur, down-up); the crop and the editor's grid (no
# clean-up, another rounding of the 512 px resize) are reported on rows of their own.
OWN_ROWS = ("crop", "grid", "naive")
ISSUE4_CLEANUPS = tuple(c for c in CLEANUPS if c not in OWN_ROWS)
# `--presets medium-nearest`: the preset attacking cloak's own (nearest) rounding of the
# 512 px grid only, as every preset did before both_roundings.
NEAREST_ONLY = "-nearest"


def dev_photos(folder: Path, prefixes: list[str]) -> list[Path]:
    """The photos in `folder` whose name starts with one of `prefixes` ("d01", ...), sorted."""
    return [p for p in sorted(Path(folder).iterdir())
            if p.suffix.lower() in SUFFIXES and p.name.split("_")[0] in prefixes]


def pick_variants(names: list[str], indices: str) -> list[str]:
    """The variant names at the comma-separated `indices` ("0,3"); all of them for ""."""
    return [names[int(i)] for i in indices.split(",")] if indices else list(names)


def load_rgb(path: Path) -> Image.Image:
    import pillow_heif

    pillow_heif.register_heif_opener()
    with Image.open(path) as img:
        return ImageOps.exif_transpose(img).convert("RGB")


def load_as_verify(path: Path) -> Image.Image:
    """What `cloak verify` compares for the photo at `path`: cloak.io's upright pixels,
    RGBA where it has transparency (the posting presets then flatten it onto white, as
    verify does; load_rgb's convert("RGB") kept what lies under the transparency)."""
    from cloak import io as cloak_io

    return photo_image(cloak_io.load_photo(path))


def to_image(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(rgb * 255).astype(np.uint8), "RGB")


def run_one(name: str, original: Image.Image, protect_fn, save_dir: Path,
            clean_cache: dict | None = None, source: Path | None = None) -> dict:
    """Protect `original` with protect_fn and verify it. With `source` (the photo's file),
    the protected pixels are written as `cloak protect` writes them (the photo's own format:
    a JPEG source as a q95 4:4:4 JPEG, HEIC as HEIC) and the file is what is verified, as
    a user posts it; without, a PNG of the pixels."""
    from cloak import io as cloak_io

    # As `cloak protect` does: the photo's own pixels, and a black-and-white photo (gray,
    # or stored in colour) gets a gray change.
    photo = cloak_io.load_photo(source) if source is not None else None
    rgb = (photo.rgb if photo is not None
           else np.asarray(original.convert("RGB"), dtype=np.float32) / 255)
    start = time.perf_counter()
    protected_rgb = protect_fn(rgb, grayscale=bool(photo is not None and photo.looks_gray))
    seconds = time.perf_counter() - start
    save_dir.mkdir(parents=True, exist_ok=True)
    if source is not None:
        written = cloak_io.save_photo(photo, protected_rgb,
                                      cloak_io.output_path_for(source, save_dir),
                                      overwrite=True)
        protected = load_as_verify(written)
    else:
        protected = to_image(protected_rgb)
        protected.save(save_dir / (Path(name).stem + ".png"))
    v = verify_images(original, protected, CHANNELS, clean_cache=clean_cache)
    return {"name": name, "seconds": seconds, "megapixels": original.width * original.height / 1e6,
            **v.to_dict()}


def saved_output(folder: Path, name: str) -> Path:
    """The file run_one left for photo `name` in `folder`: the copy as cloak writes it
    (the photo's own format), or, from runs before that, a PNG of the pixels."""
    from cloak import io as cloak_io

    written = cloak_io.output_path_for(Path(name), folder)
    return written if written.is_file() else folder / (Path(name).stem + ".png")


def saved_dir(out: Path, label: str) -> Path:
    """Where run_one saved a run's outputs: <out>/<preset> or <out>/photoguard."""
    return out / ("photoguard" if label == "PhotoGuard reference" else label.split()[-1])


def remeasure(out: Path, results: dict[str, list[dict]], photos: dict,
              only: tuple[str, ...] = ()) -> None:
    """Verify every saved output again on CHANNELS, in place; seconds stay as measured.
    `only`: measure just these channels and put them in place of the row's old entries
    (the verdicts are taken again over the row's whole channel list)."""
    for index, name in enumerate(photos):
        clean_cache: dict = {}
        for label, rows in results.items():
            for i, row in enumerate(rows):
                if row["name"] != name:
                    continue
                # a reused row's output is saved under the run it was reused from
                folder = saved_dir(out, row.get("same_as", label))
                saved = saved_output(folder, name)
                protected = load_as_verify(saved)
                v = verify_images(photos[name], protected, only or CHANNELS,
                                  clean_cache=clean_cache)
                if only:  # in place of the row's own entries; a channel it lacks is added
                    fresh = {c.channel: c for c in v.channels}
                    had = [c["channel"] for c in row["channels"]]
                    v.channels = [fresh.get(c["channel"]) or ChannelResult(**c)
                                  for c in row["channels"]] + [
                        fresh[c] for c in only if c not in had]
                rows[i] = {**row, **v.to_dict()}
                print(f"{index + 1}/{len(photos)}", label, name, flush=True)


def summarise(rows: list[dict], label: str) -> str:
    lines = [f"### {label} ({len(rows)} photos)", "",
             "| channel | " + " | ".join(ALL_MODEL_NAMES) + " |",
             "|---|" + "---|" * len(ALL_MODEL_NAMES)]
    for ch in CHANNELS:
        if not all(ch in _by_channel(r) for r in rows):
            continue  # rows from a run with an older channel list (see --remeasure)
        cells = []
        for m in ALL_MODEL_NAMES:
            vals = [_by_channel(r)[ch][m] for r in rows]
            cells.append(f"{statistics.median(vals):.1f} ({min(vals):.1f})")
        lines.append(f"| {ch} | " + " | ".join(cells) + " |")
    psnr = [r["psnr"] for r in rows]
    ssim = [r["ssim"] for r in rows]
    spm = [r["seconds"] / r["megapixels"] for r in rows]
    lines += ["", f"PSNR median {statistics.median(psnr):.1f} dB (min {min(psnr):.1f}); "
              f"SSIM median {statistics.median(ssim):.3f} (min {min(ssim):.3f}); "
              f"{statistics.median(spm):.1f} s/MP median; verdicts as is (before posting): "
              + _counts(r["verdict_as_is"] for r in rows)
              + "; verdicts on each photo's worst channel: " + _counts(r["verdict"] for r in rows)
              + "; worst channel: " + _counts(r["worst_channel"] for r in rows), ""]
    return "\n".join(lines)


def _counts(values) -> str:
    """'a 3, b 1' for the values, most frequent first."""
    values = list(values)
    return ", ".join(f"{v} {values.count(v)}"
                     for v in sorted(set(values), key=lambda v: (-values.count(v), v)))


def _by_channel(row: dict) -> dict[str, dict[str, float]]:
    """channel -> model -> damage (dB) of one verified photo."""
    return {c["channel"]: c["damage_db"] for c in row["channels"]}


def _median_damage(rows: list[dict], channel: str, model: str) -> float:
    """Median over rows; NaN when a row was verified without `channel`."""
    vals = [_by_channel(r).get(channel, {}).get(model, math.nan) for r in rows]
    return statistics.median(vals) if not any(map(math.isnan, vals)) else math.nan


def _worst_cleanup(rows: list[dict], model: str) -> float:
    """The lowest median damage over ISSUE4_CLEANUPS; NaN when any of them is unmeasured
    (min() kept a NaN only when it came first, so a missing clean-up could hide the worst)."""
    values = [_median_damage(rows, channel, model) for channel in ISSUE4_CLEANUPS]
    return math.nan if any(map(math.isnan, values)) else min(values)


def _share(after: float, base: float) -> str:
    return f"{100 * after / base:.0f}%" if base > 0 and not math.isnan(after) else "n/a"


def retention_table(results: dict[str, list[dict]]) -> str:
    """Median damage after each channel as a share of the median as-posted damage, per model
    (issue 4's targets: >= 75% after each social preset, >= 50% after the worst clean-up),
    and cloak's damage after `instagram` as a multiple of the reference's."""
    lines = ["### Retention after posting (median damage / median as-posted damage)", "",
             "| run | channel | " + " | ".join(ALL_MODEL_NAMES) + " |",
             "|---|---|" + "---|" * len(ALL_MODEL_NAMES)]
    for label, rows in results.items():
        base = {m: _median_damage(rows, "as-is", m) for m in ALL_MODEL_NAMES}
        for ch in (*SOCIAL_PRESETS, "worst clean-up", *OWN_ROWS):
            cells = []
            for m in ALL_MODEL_NAMES:
                if ch == "worst clean-up":
                    after = _worst_cleanup(rows, m)
                else:
                    after = _median_damage(rows, ch, m)
                cells.append(_share(after, base[m]))
            lines.append(f"| {label} | {ch} | " + " | ".join(cells) + " |")
    ref = results.get("PhotoGuard reference")
    if ref:
        lines += ["", "| run | instagram damage vs reference | " + " | ".join(ALL_MODEL_NAMES)
                  + " |", "|---|---|" + "---|" * len(ALL_MODEL_NAMES)]
        ref_names = {r["name"] for r in ref}
        for label, rows in results.items():
            if label == "PhotoGuard reference":
                continue
            paired = [r for r in rows if r["name"] in ref_names]
            cells = []
            for m in ALL_MODEL_NAMES:
                r = _median_damage(ref, "instagram", m)
                c = _median_damage(paired, "instagram", m)
                # A ratio of medians: with the reference near 0 dB it says little alone,
                # so both medians are given.
                cells.append(f"{c / r:.1f}x ({c:.1f} / {r:.1f} dB)" if r > 0
                             else f"{c:.1f} vs {r:.1f}")
            lines.append(f"| {label} | ratio of medians on the {len(paired)} photos both ran | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def size_table(results: dict[str, list[dict]], split_mp: float = 0.5) -> str:
    """The retention table's figures for photos under and over `split_mp` megapixels.

    A photo larger than the working size carries a perturbation upsampled to full size, which
    a platform's downscale and JPEG blocks see as smooth; a small one carries it at its own
    pixels, on the JPEG block grid."""
    lines = [f"### Retention by photo size (under / at least {split_mp} MP)", "",
             "| run | photos | as-is median | " + " | ".join(
                 f"{ch} retention" for ch in ("instagram", "worst clean-up", *OWN_ROWS)) + " |",
             "|---|---|---|" + "---|" * (2 + len(OWN_ROWS))]
    for label, rows in results.items():
        for name, group in (("under", [r for r in rows if r["megapixels"] < split_mp]),
                            ("at least", [r for r in rows if r["megapixels"] >= split_mp])):
            if not group:
                continue
            base = {m: _median_damage(group, "as-is", m) for m in ALL_MODEL_NAMES}
            cells = []
            for ch in ("instagram", "worst clean-up", *OWN_ROWS):
                shares = []
                for m in ALL_MODEL_NAMES:
                    after = (_worst_cleanup(group, m)
                             if ch == "worst clean-up" else _median_damage(group, ch, m))
                    shares.append(_share(after, base[m]))
                cells.append("/".join(shares))
            lines.append(f"| {label} | {len(group)} {name} {split_mp} MP | "
                         + "/".join(f"{base[m]:.1f}" for m in ALL_MODEL_NAMES) + " | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def grid_table(results: dict[str, list[dict]]) -> str:
    """Medians on the photos whose two roundings of the 512 px grid differ, and the worse
    of the two grids per photo on all photos. A photo's roundings differ exactly when its
    `grid` row is not its as-is row: where they agree, verify's grid clean-up is the photo
    itself."""
    def worse(row: dict, model: str) -> float:
        ch = _by_channel(row)
        return min(ch["as-is"][model], ch["grid"][model])

    lines = ["### The editor's grid (median damage, " + " / ".join(ALL_MODEL_NAMES) + ")",
             "", "| run | photos | as-is | grid | instagram | worse grid per photo | PSNR |",
             "|---|---|---|---|---|---|---|"]  # 7 cells, as the header
    for label, rows in results.items():
        rows = [r for r in rows if "grid" in _by_channel(r)]
        differ = [r for r in rows if _by_channel(r)["grid"] != _by_channel(r)["as-is"]]
        for name, group in ((f"{len(differ)} whose roundings differ", differ),
                            (f"all {len(rows)}", rows)):
            if not group:
                continue
            cells = ["/".join(f"{_median_damage(group, ch, m):.1f}" for m in ALL_MODEL_NAMES)
                     for ch in ("as-is", "grid", "instagram")]
            cells.append("/".join(f"{statistics.median(worse(r, m) for r in group):.1f}"
                                  for m in ALL_MODEL_NAMES))
            cells.append(f"{statistics.median(r['psnr'] for r in group):.1f}")
            lines.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def preset_config(preset: str) -> ProtectConfig:
    """The config of a `--presets` entry: a preset name, or name + NEAREST_ONLY."""
    if preset.endswith(NEAREST_ONLY):
        return ProtectConfig(strength=preset.removesuffix(NEAREST_ONLY), measure=False,
                             both_roundings=False)
    return ProtectConfig(strength=preset, measure=False)


def cloak_protector(preset: str):
    config = preset_config(preset)
    return lambda rgb, grayscale=False: protect_array(rgb, config, grayscale=grayscale).rgb


def reference_protector(rgb: np.ndarray, grayscale: bool = False) -> np.ndarray:
    """The PhotoGuard reference, which knows nothing of black-and-white photos."""
    return photoguard_encoder_attack(rgb)


def same_attack_as(preset: str, others: list[str], img: Image.Image) -> str | None:
    """Another `--presets` entry whose attack on `img` is this one's, step for step (a
    NEAREST_ONLY entry on a photo whose sides round the same way both ways): its row can be
    reused, as the attack is deterministic on one machine."""
    from cloak.pipeline import editing_views

    config = preset_config(preset)
    size = (img.height, img.width)
    for other in others:
        other_config = preset_config(other)
        if other != preset and other_config.replace(both_roundings=config.both_roundings) \
                == config and editing_views(size, config.editing_sizes, config.both_roundings) \
                == editing_views(size, other_config.editing_sizes, other_config.both_roundings):
            return other
    return None


def dump(out: Path, results: dict) -> None:
    """Raw figures so far (written after every photo, so a stopped run keeps them)."""
    (out / "efficacy.json").write_text(json.dumps({"results": results}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", default="../shared/photos/dev")
    ap.add_argument("--limit", type=int, default=0, help="Use only the first N photos.")
    ap.add_argument("--presets", default="medium")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--reference-limit", type=int, default=0,
                    help="Run the reference on the first N photos only (it takes 3-5 min "
                         "each on a 2-core AVX2 CPU in fp32); ratios use the photos both runs "
                         "share.")
    ap.add_argument("--resume", action="store_true",
                    help="Keep the rows already in <out>/efficacy.json; run only the rest.")
    ap.add_argument("--out", default="bench_out")
    ap.add_argument("--table", default="benchmarks/efficacy.md")
    ap.add_argument("--from-json", action="store_true",
                    help="Only rewrite the table from <out>/efficacy.json (e.g. a stopped run).")
    ap.add_argument("--remeasure", action="store_true",
                    help="Verify the outputs saved under <out> again on the current channel "
                         "list (no attack runs; each row keeps its measured seconds).")
    ap.add_argument("--channels", default="",
                    help="With --remeasure: only these channels, comma-separated (the "
                         "others keep their figures), e.g. instagram after its preset "
                         "changed.")
    args = ap.parse_args()
    if args.channels and not args.remeasure:
        ap.error("--channels goes with --remeasure")
    unknown = set(filter(None, map(str.strip, args.channels.split(",")))) - set(CHANNELS)
    if unknown:
        ap.error(f"unknown channel(s) {', '.join(sorted(unknown))}; choose from "
                 f"{', '.join(CHANNELS)}")
    keep_freed_memory()  # as the CLI does; cloak and the reference both run in this process
    if args.from_json:
        results = json.loads((Path(args.out) / "efficacy.json").read_text())["results"]
        write_table(args, results)
        return
    torch.manual_seed(0)
    paths = sorted(p for p in Path(args.photos).iterdir() if p.suffix.lower() in SUFFIXES)
    if args.limit:
        paths = paths[: args.limit]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    photos = {p.name: load_as_verify(p) for p in paths}
    paths_by_name = {p.name: p for p in paths}
    results: dict[str, list[dict]] = {}
    if args.remeasure:
        results = json.loads((out / "efficacy.json").read_text())["results"]
        remeasure(out, results, photos,
                  tuple(c.strip() for c in args.channels.split(",") if c.strip()))
        dump(out, results)
        write_table(args, results)
        return
    if args.resume and (out / "efficacy.json").is_file():
        results = json.loads((out / "efficacy.json").read_text())["results"]
        # Rows measured on another channel list (an older cloak.verify) are run again.
        results = {label: [r for r in rows if [c["channel"] for c in r["channels"]]
                           == list(CHANNELS)] for label, rows in results.items()}
    done = {(label, row["name"]) for label, rows in results.items() for row in rows}
    # Photo by photo, every run in turn, so a stopped run still compares like with like.
    presets = args.presets.split(",")
    runs = [(f"cloak {p}", saved_dir(out, f"cloak {p}"), cloak_protector(p)) for p in presets]
    if not args.no_reference:
        runs.append(("PhotoGuard reference", saved_dir(out, "PhotoGuard reference"),
                     reference_protector))
    for index, name in enumerate(photos):
        img = photos[name]
        clean_cache: dict = {}  # the original's side of each channel, shared by the runs
        for label, save_dir, protect_fn in runs:
            if (label, name) in done or (label == "PhotoGuard reference" and
                                         args.reference_limit and index >= args.reference_limit):
                continue
            twin = (same_attack_as(label.split()[-1], presets, img)
                    if label.startswith("cloak ") else None)
            earlier = [r for r in results.get(f"cloak {twin}", []) if r["name"] == name]
            if earlier:  # the same attack on this photo: its outputs are the same bytes
                row = {**earlier[0], "same_as": f"cloak {twin}"}
            else:
                row = run_one(name, img, protect_fn, save_dir, clean_cache,
                              source=paths_by_name[name])
            results.setdefault(label, []).append(row)
            dump(out, results)
            print(label, name, f"{row['psnr']:.1f} dB", row["channels"][0]["damage_db"],
                  f"{row['seconds']:.0f}s", flush=True)
    dump(out, results)
    write_table(args, results)


def write_table(args, results: dict[str, list[dict]]) -> None:
    md = ["## Efficacy (median (worst) damage in dB per autoencoder)", "",
          (f"Command: `CLOAK_MODEL_DIR=../shared/models python benchmarks/efficacy.py "
           f"{shlex.join(a for a in sys.argv[1:] if a != '--from-json')}`; "
           f"{describe(pick_device())}."), ""]
    if args.from_json:
        md[-1:-1] = [(f"(Tables rewritten from `{Path(args.out) / 'efficacy.json'}` with "
                      "`--from-json`; the figures are that run's.)"), ""]
    md += [summarise(rows, label) for label, rows in results.items()]
    md.append(retention_table(results))
    md.append(size_table(results))
    md.append(grid_table(results))
    Path(args.table).write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
