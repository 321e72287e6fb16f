"""Batch drill: the dev photos plus bad files, SIGKILL halfway, rerun, check everything.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/batch_drill.py [--strength medium]

Builds a folder in a temp dir: a copy of every photo in ../shared/photos/dev (with a
Unicode, space-laden name for one of them), the bad inputs of issue 5 (zero bytes,
truncated JPEG, text named .jpg, decompression-bomb PNG header, 1x1, 30000x20, a symlink
loop) and a non-image that must be skipped quietly. Then:

1. runs `cloak protect IN --out OUT` and SIGKILLs it once half the good photos are out;
2. reruns the same command to completion (the same photo is also named twice);
3. checks: every good photo has one output that decodes, with the source's upright size;
   every bad file got one line on stderr; the exit code is 2 (some files failed); no temp
   files are left; the sources are byte-identical; photos finished before the kill were
   not redone (at most the one written in the instant of the kill).

Prints a report and exits non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "photos" / "dev"
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".tif", ".tiff", ".bmp"}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bomb_png(path: Path) -> None:
    """A valid PNG header claiming 100000x100000 px (10 gigapixels)."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
        for k, d in ((b"IHDR", ihdr), (b"IDAT", zlib.compress(bytes(1000))), (b"IEND", b"")))
    path.write_bytes(data)


def build(folder: Path) -> tuple[list[Path], list[Path]]:
    """Fill `folder`; return (good photos, bad files)."""
    good = []
    for src in sorted(DEV.iterdir()):
        if src.suffix.lower() in PHOTO_SUFFIXES:
            name = src.name if not src.name.startswith("d08") else "Ünïcode naïve photo " + src.name
            shutil.copy2(src, folder / name)
            good.append(folder / name)
    bad_dir = folder / "bad files"
    bad_dir.mkdir()
    (bad_dir / "empty.jpg").write_bytes(b"")
    jpeg = good[6].read_bytes() if good[6].suffix == ".jpg" else None
    (bad_dir / "truncated.jpg").write_bytes((jpeg or b"\xff\xd8\xff\xe0")[: 5000])
    (bad_dir / "notes.jpg").write_text("this is a text file, not a photo\n")
    bomb_png(bad_dir / "bomb.png")
    Image.new("RGB", (1, 1)).save(bad_dir / "one-pixel.png")
    Image.new("L", (30000, 20)).save(bad_dir / "stripe.png")
    (bad_dir / "loop").symlink_to(bad_dir, target_is_directory=True)
    (folder / "README.txt").write_text("not a photo; skipped quietly\n")
    bad = [bad_dir / n for n in ("empty.jpg", "truncated.jpg", "notes.jpg", "bomb.png",
                                 "one-pixel.png", "stripe.png")]
    return good, bad


def upright_size(path: Path) -> tuple[int, int]:
    import pillow_heif

    pillow_heif.register_heif_opener()
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strength", default="medium")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cloak-drill-"))
    inp, out = work / "in", work / "out"
    inp.mkdir()
    good, bad = build(inp)
    before = {p: sha(p) for p in [*good, *bad]}
    cmd = ["cloak", "protect", str(inp), str(good[0]), "--out", str(out),
           "--strength", args.strength, "--no-measure"]
    checks: list[tuple[str, bool]] = []
    start = time.perf_counter()

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    outputs = lambda: [p for p in out.rglob("*") if p.is_file()
                       and p.suffix.lower() in PHOTO_SUFFIXES]
    while proc.poll() is None and len(outputs()) < len(good) // 2:
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before_kill = {p: p.stat().st_mtime_ns for p in outputs()}
    checks.append((f"killed with SIGKILL after {len(done_before_kill)}/{len(good)} photos",
                   0 < len(done_before_kill) < len(good)))

    rerun = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    stderr_lines = [line for line in rerun.stderr.splitlines() if line.strip()]
    outs = outputs()
    checks.append((f"rerun exit code {rerun.returncode} (2 = some files failed)",
                   rerun.returncode == 2))
    missing, wrong = [], []
    for src in good:
        found = [p for p in outs if p.stem == src.stem]
        if len(found) != 1:
            missing.append(src.name)
            continue
        if upright_size(found[0]) != upright_size(src):
            wrong.append(found[0].name)
    checks.append((f"every good photo protected once ({len(good) - len(missing)}/{len(good)})",
                   not missing))
    checks.append(("each output decodes with the source's upright size", not wrong))
    for path in bad:
        lines = [line for line in stderr_lines if path.name in line]
        checks.append((f"bad file {path.name}: {lines[0].strip() if lines else 'NO LINE'}",
                       len(lines) == 1))
    loop_lines = [line for line in stderr_lines if "already walked" in line]
    checks.append((f"symlink loop: {loop_lines[0].strip() if loop_lines else 'NO LINE'}",
                   len(loop_lines) == 1))
    checks.append(("README.txt skipped quietly",
                   not any("README" in line for line in stderr_lines)))
    leftovers = [p for p in out.rglob("*") if p.is_file() and (
        ".cloak-tmp-" in p.name or p.suffix.lower() not in PHOTO_SUFFIXES | {".json"})]
    checks.append((f"no temp or partial files ({len(leftovers)} found)", not leftovers))
    redone = [p for p, t in done_before_kill.items() if p.stat().st_mtime_ns != t]
    # A photo written in the instant between its rename and the manifest update may be
    # redone once; anything more means resume is not working.
    redone_text = f"photos finished before the kill not redone ({len(redone)} redone; at most 1)"
    checks.append((redone_text, len(redone) <= 1))
    checks.append(("sources byte-identical", all(sha(p) == h for p, h in before.items())))

    print(f"## Batch drill ({len(good)} dev photos + {len(bad)} bad files + symlink loop, "
          f"--strength {args.strength}, {seconds:.0f} s in all)\n")
    print("\n".join(f"- [{'x' if ok else ' '}] {text}" for text, ok in checks))
    print("\nLast lines of the rerun's stderr:\n")
    print("\n".join("    " + line for line in stderr_lines[-3:]))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"\nkept {work}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
