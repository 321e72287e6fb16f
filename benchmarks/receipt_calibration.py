"""Calibrate the no-reference receipt of `cloak verify PROTECTED` on the dev photos.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/receipt_calibration.py \
        [--clean ../shared/photos/dev] [--protected bench_out/medium]

`--protected` is a folder of protected copies named like the clean photos (the efficacy
benchmark writes them to bench_out/<preset>/). For every photo, clean and protected, as
posted and after the `instagram` preset, it computes the no-reference features of
cloak.receipt.RECEIPT_FEATURES for each autoencoder. Each candidate score (a feature of one
model, or averaged over the four) gets the threshold with the best accuracy over all of
them; the table (benchmarks/receipt.md) gives the false-alarm rate on clean photos and the
detection rate on protected ones per channel, and a leave-one-photo-out accuracy (the
threshold picked without the photo, in both its versions and channels, then tested on it),
which is the honest estimate for photos not seen here. A second table gives the receipt in
use (cloak.verify's score and threshold) after every social preset. Raw scores go to
<protected>/receipt_scores.json (written there, into the --protected folder; --from-json
reads them back). Two photos at least: the leave-one-out needs another to pick on.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import SUFFIXES, load_as_verify, load_rgb, saved_output

from cloak.channel_list import SOCIAL_PRESETS
from cloak.channels import apply_channel
from cloak.models import ALL_MODEL_NAMES
from cloak.receipt import (
    RECEIPT_FEATURES,
    RECEIPT_MODEL,
    RECEIPT_SCORE,
    RECEIPT_THRESHOLD_DB,
    receipt_per_model,
)

CHANNELS = ("as-is", "instagram")  # where the thresholds are picked (issue 3's target)
REPORT_CHANNELS = ("as-is", *SOCIAL_PRESETS)  # where the receipt in use is reported


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


def leave_one_out(clean: list[list[float]], protected: list[list[float]]) -> float:
    """Accuracy when each photo's threshold is picked on the other photos. clean[i] and
    protected[i] hold photo i's scores over the channels."""
    correct = total = 0
    for i in range(len(clean)):
        rest_c = [v for j, vals in enumerate(clean) if j != i for v in vals]
        rest_p = [v for j, vals in enumerate(protected) if j != i for v in vals]
        t, _ = best_threshold(rest_c, rest_p)
        correct += sum(v < t for v in clean[i]) + sum(v >= t for v in protected[i])
        total += len(clean[i]) + len(protected[i])
    return correct / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean", type=Path, default=Path("../shared/photos/dev"))
    ap.add_argument("--protected", type=Path, default=Path("bench_out/medium"))
    ap.add_argument("--table", type=Path, default=Path("benchmarks/receipt.md"))
    ap.add_argument("--from-json", action="store_true",
                    help="re-read <protected>/receipt_scores.json instead of recomputing")
    ap.add_argument("--channels", default="",
                    help="recompute only these channels (comma-separated) and keep the rest "
                         "of <protected>/receipt_scores.json, e.g. instagram after its "
                         "preset changed")
    args = ap.parse_args()
    raw_path = args.protected / "receipt_scores.json"
    only = [c.strip() for c in args.channels.split(",") if c.strip()]
    if only and args.from_json:
        ap.error("--channels recomputes; it does not go with --from-json")
    if set(only) - set(REPORT_CHANNELS):
        ap.error(f"--channels takes channels from {', '.join(REPORT_CHANNELS)}")
    if args.from_json:
        raw = json.loads(raw_path.read_text())
    elif only:
        raw = json.loads(raw_path.read_text())
        for name, kinds in raw.items():
            protected = load_as_verify(saved_output(args.protected, name)).convert("RGB")
            for kind, img in (("clean", load_rgb(args.clean / name)), ("protected", protected)):
                kinds[kind].update({ch: receipt_per_model(apply_channel(img, ch))
                                    for ch in only})
            print(name, flush=True)
        raw_path.write_text(json.dumps(raw, indent=1))
    else:
        raw = {}  # photo -> kind -> channel -> model -> feature -> dB
        missing, pairs = [], []
        for path in sorted(args.clean.iterdir()):
            if path.suffix.lower() not in SUFFIXES:
                continue
            protected_path = saved_output(args.protected, path.name)
            if not protected_path.is_file():
                missing.append(path.name)
            else:
                pairs.append((path, protected_path))
        if len(pairs) == 1:  # before minutes of scoring: leave-one-out needs another photo
            sys.exit(f"only one photo of {args.clean} ({pairs[0][0].name}) has a protected "
                     f"copy in {args.protected}: the leave-one-out accuracy needs two or more")
        for path, protected_path in pairs:
            protected = load_as_verify(protected_path).convert("RGB")
            raw[path.name] = {
                kind: {ch: receipt_per_model(apply_channel(img, ch)) for ch in REPORT_CHANNELS}
                for kind, img in (("clean", load_rgb(path)), ("protected", protected))}
            print(path.name, flush=True)
        if missing:
            print(f"no protected copy in {args.protected} of: {', '.join(missing)}",
                  file=sys.stderr)
        if not raw:  # before writing: an earlier run's scores are not replaced by none
            sys.exit(f"no photo of {args.clean} has a protected copy in {args.protected}; "
                     "run benchmarks/efficacy.py first")
        raw_path.write_text(json.dumps(raw, indent=1))

    if len(raw) < 2:  # scores read back (--from-json, --channels) of one photo
        sys.exit(f"{raw_path} holds the scores of {len(raw)} photo(s): the leave-one-out "
                 "accuracy needs two or more")
    candidates = [(f, m) for f in RECEIPT_FEATURES for m in ("mean", *ALL_MODEL_NAMES)]

    def score(entry: dict, feature: str, model: str) -> float:
        if model == "mean":
            return sum(entry[m][feature] for m in ALL_MODEL_NAMES) / len(ALL_MODEL_NAMES)
        return entry[model][feature]

    lines = ["## No-reference receipt calibration", "",
             (f"{len(raw)} dev photos, clean and protected (`{args.protected}`), as "
              "posted and after the `instagram` preset. Threshold picked for the best accuracy "
              "over all four groups; leave-one-out picks it without the photo tested. "
              "Command: `CLOAK_MODEL_DIR=../shared/models python "
              f"benchmarks/receipt_calibration.py {shlex.join(sys.argv[1:])}`."), "",
             ("| score | model | threshold | accuracy | leave-one-out | false alarms as-is "
              "| false alarms instagram | detected as-is | detected instagram |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for feature, model in candidates:
        per = {kind: [[score(raw[p][kind][ch], feature, model) for ch in CHANNELS]
                      for p in raw] for kind in ("clean", "protected")}
        t, acc = best_threshold([v for vals in per["clean"] for v in vals],
                                [v for vals in per["protected"] for v in vals])
        loo = leave_one_out(per["clean"], per["protected"])
        cells = [f"{sum(vals[c] >= t for vals in per[kind])}/{len(per[kind])}"
                 for kind in ("clean", "protected") for c in range(len(CHANNELS))]
        lines.append(f"| {feature} | {model} | {t:.3f} | {100 * acc:.0f}% | {100 * loo:.0f}% | "
                     + " | ".join(cells) + " |")
    lines += ["", (f"The receipt in use ({RECEIPT_MODEL} {RECEIPT_SCORE} >= "
                   f"{RECEIPT_THRESHOLD_DB:+.2f} dB) after every social preset:"), "",
              "| channel | false alarms (clean) | detected (protected) | accuracy |",
              "|---|---|---|---|"]
    for ch in REPORT_CHANNELS:
        if not all(ch in raw[p]["clean"] for p in raw):
            continue  # scores from an older run without this channel
        flagged = {kind: sum(raw[p][kind][ch][RECEIPT_MODEL][RECEIPT_SCORE]
                             >= RECEIPT_THRESHOLD_DB for p in raw)
                   for kind in ("clean", "protected")}
        accuracy = (len(raw) - flagged["clean"] + flagged["protected"]) / (2 * len(raw))
        lines.append(f"| {ch} | {flagged['clean']}/{len(raw)} | {flagged['protected']}/"
                     f"{len(raw)} | {100 * accuracy:.0f}% |")
    args.table.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
