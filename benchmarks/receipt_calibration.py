"""Calibrate the no-reference receipt of `cloak verify PROTECTED` on the dev photos.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/receipt_calibration.py \
        [--clean ../shared/photos/dev] [--protected bench_out/medium]

`--protected` is a folder of protected copies named like the clean photos (the efficacy
benchmark writes them to bench_out/<preset>/). For every photo, clean and protected, as
posted and after the `instagram` preset, it computes the candidate no-reference scores
in cloak.verify.RECEIPT_FEATURES, picks for each the threshold with the best accuracy over
all of them, and writes a markdown table (benchmarks/receipt.md) with the false-alarm
rate on clean photos and the detection rate on protected ones, per channel. The raw
scores go to <protected>/receipt_scores.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import SUFFIXES, load_rgb

from cloak.verify import RECEIPT_FEATURES, apply_channel, receipt_features

CHANNELS = ("as-is", "instagram")


def best_threshold(clean: list[float], protected: list[float]) -> tuple[float, float]:
    """Threshold (score >= t means protected) with the highest accuracy; (t, accuracy)."""
    candidates = sorted(set(clean) | set(protected))
    best = (0.0, 0.0)
    for lo, hi in zip([candidates[0] - 1, *candidates], [*candidates, candidates[-1] + 1]):
        t = (lo + hi) / 2
        correct = sum(s < t for s in clean) + sum(s >= t for s in protected)
        acc = correct / (len(clean) + len(protected))
        if acc > best[1]:
            best = (t, acc)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean", type=Path, default=Path("../shared/photos/dev"))
    ap.add_argument("--protected", type=Path, default=Path("bench_out/medium"))
    ap.add_argument("--table", type=Path, default=Path("benchmarks/receipt.md"))
    args = ap.parse_args()
    pairs = []
    for path in sorted(args.clean.iterdir()):
        if path.suffix.lower() in SUFFIXES and (args.protected / (path.stem + ".png")).is_file():
            pairs.append((path, args.protected / (path.stem + ".png")))
    scores: dict[str, dict[str, dict[str, list[float]]]] = {
        kind: {ch: {f: [] for f in RECEIPT_FEATURES} for ch in CHANNELS}
        for kind in ("clean", "protected")}
    for clean_path, protected_path in pairs:
        with Image.open(protected_path) as im:
            protected = im.convert("RGB")
        for kind, img in (("clean", load_rgb(clean_path)), ("protected", protected)):
            for ch in CHANNELS:
                features = receipt_features(apply_channel(img, ch))
                for name, value in features.items():
                    scores[kind][ch][name].append(value)
        print(clean_path.name, flush=True)
    (args.protected / "receipt_scores.json").write_text(json.dumps(scores, indent=1))

    lines = ["## No-reference receipt calibration", "",
             (f"{len(pairs)} dev photos, clean and protected (`{args.protected}`), as posted "
              "and after the `instagram` preset. Threshold picked for the best accuracy over "
              "all four groups. Command: `CLOAK_MODEL_DIR=../shared/models python "
              "benchmarks/receipt_calibration.py`."), "",
             ("| score | threshold | accuracy | false alarms as-is | false alarms instagram "
              "| detected as-is | detected instagram |"), "|---|---|---|---|---|---|---|"]
    for name in RECEIPT_FEATURES:
        clean = [v for ch in CHANNELS for v in scores["clean"][ch][name]]
        prot = [v for ch in CHANNELS for v in scores["protected"][ch][name]]
        t, acc = best_threshold(clean, prot)
        cells = []
        for kind in ("clean", "protected"):
            for ch in CHANNELS:
                vals = scores[kind][ch][name]
                cells.append(f"{sum(v >= t for v in vals)}/{len(vals)}")
        lines.append(f"| {name} | {t:.3f} | {100 * acc:.0f}% | " + " | ".join(cells) + " |")
    args.table.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
