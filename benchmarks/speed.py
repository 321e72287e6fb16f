"""Speed benchmark: seconds and peak memory for a 12 MP phone photo, per preset.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/speed.py \
        [--photo ../shared/photos/dev/d25_exif-samples_jolla.jpg] [--repeats 3] \
        [--presets fast,medium] [--batch 10] [--no-reference] [--untuned]

What it does, all in one run on this machine:
- makes a 4000x3000 JPEG (q92) from a real dev photo (resized; no synthetic pixels);
- for each preset, runs `protect_file` on it in a fresh process `--repeats` times and
  reports the median wall time (photo load + protection + save, models already loaded),
  the phases, and the process's peak RSS; plus one cold `cloak protect` CLI run
  (interpreter start, imports and model loading included);
- runs the PhotoGuard reference (benchmarks/photoguard.py) on the same photo, as many
  times (median), in a fresh process set up like cloak's (freed memory kept, its model
  loaded before the timer), so the "x faster" ratio compares like with like;
- measures damage after the `instagram` posting preset for cloak and the reference;
- with `--untuned`, runs each preset again with glibc's default malloc thresholds
  (CLOAK_KEEP_FREED_MEMORY=0; cloak/allocator.py), interleaved, and checks the bytes match;
- protects a batch of `--batch` phone-sized photos through the CLI and reports
  seconds per photo (the 100-photo figure is that rate times 100, and says so).

Writes benchmarks/speed.md (the table pasted into the README).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PHOTO = ROOT.parent / "shared" / "photos" / "dev" / "d25_exif-samples_jolla.jpg"


DEFAULT_TABLE = ROOT / "benchmarks" / "speed.md"


def make_12mp(src: Path, dst: Path, size=(4000, 3000)) -> Path:
    """Resize a real photo to 4000x3000 and save it as a camera-like JPEG."""
    from PIL import Image, ImageOps

    with Image.open(src) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
        img = ImageOps.fit(img, size, Image.LANCZOS)
        img.save(dst, quality=92, subsampling=2)
    return dst


def child(preset: str, src: str, out: str) -> None:
    """Run in a fresh process: protect one photo, print JSON with phases and peak RSS."""
    import torch

    from cloak import ProtectConfig, protect_file
    from cloak.allocator import keep_freed_memory
    from cloak.batch import preload_models
    from cloak.device import pick_device

    keep_freed_memory()  # as the CLI does (CLOAK_KEEP_FREED_MEMORY=0 turns it off)
    config = ProtectConfig(strength=preset, measure=False)
    t0 = time.perf_counter()
    preload_models(config)
    load_s = time.perf_counter() - t0
    device = pick_device(config.device)
    if device.type != "cpu":
        # A GPU's first run loads kernels and picks algorithms: time the second, as a
        # batch's photos after the first run (the CPU needs no warm-up: not done there).
        warmup = Path(out).with_name("warmup-" + Path(out).name)
        protect_file(src, warmup, config)
        warmup.unlink()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
    marks: list[tuple[str, float]] = []

    def progress(_fraction: float, message: str) -> None:
        marks.append((message.split(" ")[0], time.perf_counter()))

    start = time.perf_counter()
    report = protect_file(src, out, config, progress=progress)
    wall = time.perf_counter() - start
    marks.append(("end", start + wall))
    # Phase names: loading (-> prepare: working image, faces, budget map, round-trip
    # filter; the models are preloaded above), step (the attack), applying (full-res),
    # saving (-> save; the file is written), measuring (the saved photo's figures, for a
    # lossy format), done (-> save: the moment the call returns).
    phases: dict[str, float] = {"load": marks[0][1] - start if marks else 0.0}
    for (name, t), (_, t_next) in itertools.pairwise(marks):
        name = {"loading": "prepare", "saving": "save", "done": "save", "step": "attack",
                "applying": "full-res"}.get(name, name)
        phases[name] = phases.get(name, 0.0) + t_next - t
    peak_mb = peak_rss_mb()
    gpu_mb = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None)
    print(json.dumps({"wall_s": wall, "model_load_s": load_s, "peak_rss_mb": peak_mb,
                      "phases": phases, "psnr": report.psnr, "ssim": report.ssim,
                      "warmed_up": device.type != "cpu", "gpu_peak_mb": gpu_mb}))


def run_child(preset: str, src: Path, out: Path, keep_freed: bool = True) -> dict:
    if out.exists():
        out.unlink()
    env = dict(os.environ, CLOAK_KEEP_FREED_MEMORY="1" if keep_freed else "0")
    proc = subprocess.run([sys.executable, __file__, "--child", preset, str(src), str(out)],
                          capture_output=True, text=True, check=True, env=env)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict]) -> dict:
    """Medians over a preset's child runs."""
    return {
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "runs": [r["wall_s"] for r in runs],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "phases": {k: statistics.median(r["phases"].get(k, 0) for r in runs)
                   for k in runs[0]["phases"]},
        "psnr": runs[0]["psnr"], "ssim": runs[0]["ssim"],
        "model_load_s": statistics.median(r["model_load_s"] for r in runs),
        "warmed_up": runs[0].get("warmed_up", False),
        "gpu_peak_mb": max((r.get("gpu_peak_mb") or 0) for r in runs) or None,
    }


def cold_cli(preset: str, src: Path, out_dir: Path) -> float:
    shutil.rmtree(out_dir, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(["cloak", "protect", str(src), "--out", str(out_dir), "--strength", preset,
                    "--no-measure"], check=True, capture_output=True)
    return time.perf_counter() - start


def instagram_damage(original: Path, protected: Path) -> dict[str, float]:
    from PIL import Image

    from cloak.io import load_photo
    from cloak.verify import verify_images

    def pil(path):
        import numpy as np

        return Image.fromarray(np.round(load_photo(path).rgb * 255).astype("uint8"))

    v = verify_images(pil(original), pil(protected), ("instagram",))
    return v.to_dict()["channels"][0]["damage_db"]


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB. On Linux, VmHWM of its own memory map:
    ru_maxrss would do, except that a child started by vfork (as subprocess does) inherits
    its parent's peak across exec as a floor, which is this benchmark's own (torch,
    four models, two 12 MP photos checked after posting)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS


def reference(src: Path, dst: Path) -> tuple[float, float]:
    """PhotoGuard reference on the photo, in a fresh process set up as cloak's timed runs
    are (freed memory kept, cloak/allocator.py; its model loaded before the timer):
    (seconds for photo load + attack + save, peak RSS MB)."""
    code = (
        "import sys, time, json, numpy as np; sys.path.insert(0, 'benchmarks')\n"
        "from PIL import Image\n"
        "from speed import peak_rss_mb\n"
        "from cloak.allocator import keep_freed_memory; keep_freed_memory()\n"
        "from cloak.device import pick_device\n"
        "from cloak.models import load_autoencoder; load_autoencoder('taesd', "
        "device=pick_device())\n"
        "from photoguard import photoguard_encoder_attack\n"
        "from cloak.io import load_photo\n"
        "if pick_device().type != 'cpu':  # a GPU's first run loads kernels: untimed, as\n"
        "    photoguard_encoder_attack(load_photo(sys.argv[1]).rgb)  # cloak's warm-up\n"
        "t = time.perf_counter(); p = load_photo(sys.argv[1])\n"
        "rgb = photoguard_encoder_attack(p.rgb)\n"
        "Image.fromarray(np.round(rgb * 255).astype('uint8')).save(sys.argv[2], quality=95,"
        " subsampling=0)\n"
        "print(json.dumps([time.perf_counter() - t, peak_rss_mb()]))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(src), str(dst)], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    seconds, peak = json.loads(proc.stdout.strip().splitlines()[-1])
    return seconds, peak


def batch(preset: str, photo: Path, count: int, work: Path) -> float:
    """Protect `count` phone-sized photos (4032x3024 JPEGs) via the CLI: seconds per photo."""
    from PIL import Image

    folder = work / "batch_in"
    folder.mkdir(exist_ok=True)
    with Image.open(photo) as img:
        base = img.convert("RGB").resize((4032, 3024), Image.LANCZOS)
    for i in range(count):  # distinct crops so no two files are the same photo
        base.rotate(0, translate=(i * 7, i * 5)).save(folder / f"p{i:03d}.jpg", quality=90)
    out = work / "batch_out"
    start = time.perf_counter()
    subprocess.run(["cloak", "protect", str(folder), "--out", str(out), "--strength", preset,
                    "--no-measure"], check=True, capture_output=True)
    return (time.perf_counter() - start) / count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    ap.add_argument("--presets", default="fast,medium")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=10, help="photos in the batch run (0: skip)")
    ap.add_argument("--batch-preset", default="medium")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--reference-repeats", type=int, default=0,
                    help="runs of the PhotoGuard reference (default: --repeats)")
    ap.add_argument("--untuned", action="store_true",
                    help="also run each preset with glibc's default malloc thresholds "
                         "(CLOAK_KEEP_FREED_MEMORY=0), interleaved with the tuned runs")
    ap.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    ap.add_argument("--child", nargs=3, metavar=("PRESET", "SRC", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return

    import torch

    from cloak.device import describe, pick_device

    work = Path(tempfile.mkdtemp(prefix="cloak-speed-"))
    try:
        src = make_12mp(args.photo, work / "photo_12mp.jpg")
        rows, damage = {}, {}
        for preset in args.presets.split(","):
            runs, untuned = [], []
            for _ in range(args.repeats):
                runs.append(run_child(preset, src, work / f"{preset}.jpg"))
                if args.untuned:
                    untuned.append(run_child(preset, src, work / f"{preset}_untuned.jpg",
                                             keep_freed=False))
            print(preset, [round(r["wall_s"], 1) for r in runs], flush=True)
            rows[preset] = summarise(runs)
            rows[preset]["cold_cli_s"] = cold_cli(preset, src, work / f"cli_{preset}")
            damage[f"cloak {preset}"] = instagram_damage(src, work / f"{preset}.jpg")
            if untuned:
                print(preset, "untuned", [round(r["wall_s"], 1) for r in untuned], flush=True)
                name = f"{preset}, glibc malloc defaults"
                rows[name] = summarise(untuned)
                rows[name]["same_bytes"] = ((work / f"{preset}.jpg").read_bytes()
                                            == (work / f"{preset}_untuned.jpg").read_bytes())
                damage[f"cloak {name}"] = instagram_damage(src, work / f"{preset}_untuned.jpg")
        if not args.no_reference:
            ref_runs = [reference(src, work / "reference.jpg")
                        for _ in range(args.reference_repeats or args.repeats)]
            rows["PhotoGuard reference"] = {
                "wall_s": statistics.median(s for s, _ in ref_runs),
                "runs": [s for s, _ in ref_runs],
                "peak_rss_mb": max(peak for _, peak in ref_runs), "phases": {}}
            damage["PhotoGuard reference"] = instagram_damage(src, work / "reference.jpg")
            print("reference", [round(s, 1) for s, _ in ref_runs], flush=True)
        per_photo = batch(args.batch_preset, args.photo, args.batch, work) if args.batch else None
    finally:
        shutil.rmtree(work, ignore_errors=True)

    machine = f"{describe(pick_device())}, torch {torch.__version__}"
    md = ["## Speed (12 MP = 4000x3000 JPEG)", "",
          # the command as given, every option kept (one rebuilt from a few dropped
          # --presets, --photo, --no-reference, and re-ran another benchmark)
          (f"Command: `CLOAK_MODEL_DIR=../shared/models "
           f"{shlex.join(['python', 'benchmarks/speed.py', *sys.argv[1:]])}`. "
           f"Machine: {machine}."), "",
          ("| run | median wall s (runs) | peak RSS MB | instagram damage dB (worst model) "
           "| PSNR | phases (median s) |"), "|---|---|---|---|---|---|"]
    ref_s = rows.get("PhotoGuard reference", {}).get("wall_s")
    for name, r in rows.items():
        label = name if name.startswith("PhotoGuard") else f"cloak {name}"
        d = damage[label]
        phases = ", ".join(f"{k} {v:.1f}" for k, v in r["phases"].items())
        runs = ", ".join(f"{s:.1f}" for s in r["runs"])
        speedup = f" ({ref_s / r['wall_s']:.1f}x faster than reference)" if (
            ref_s and not name.startswith("PhotoGuard")) else ""
        psnr = f"{r['psnr']:.1f}" if "psnr" in r else ""
        md.append(f"| {label} | {r['wall_s']:.1f} ({runs}){speedup} | {r['peak_rss_mb']:.0f} | "
                  + ", ".join(f"{k} {v:.1f}" for k, v in d.items())
                  + f" ({min(d.values()):.1f}) | {psnr} | {phases} |")
    md.append("")
    for name, r in rows.items():
        if "cold_cli_s" in r:
            md.append(f"- cold `cloak protect` CLI run, {name}: {r['cold_cli_s']:.1f} s "
                      f"(one fresh process: interpreter start, imports, model loading and "
                      f"the photo; the timed runs above load their models before the timer, "
                      f"in {r['model_load_s']:.1f} s)")
    for name, r in rows.items():
        if r.get("warmed_up"):
            gpu = (f"; peak GPU memory {r['gpu_peak_mb']:.0f} MB" if r.get("gpu_peak_mb")
                   else "")
            md.append(f"- {name}: each timed run followed one warm-up run of the same photo in "
                      f"the same process (GPU){gpu}")
    for name, r in rows.items():
        if "same_bytes" in r:
            preset = name.split(",")[0]
            md.append(f"- keeping freed memory (cloak/allocator.py) at {preset}: "
                      f"{r['wall_s']:.1f} s with glibc's defaults -> {rows[preset]['wall_s']:.1f}"
                      f" s ({r['wall_s'] / rows[preset]['wall_s']:.2f}x), peak RSS "
                      f"{r['peak_rss_mb']:.0f} -> {rows[preset]['peak_rss_mb']:.0f} MB; output "
                      f"bytes {'identical' if r['same_bytes'] else 'DIFFER'}")
    if per_photo is not None:
        md.append(f"- batch of {args.batch} phone photos (4032x3024) at {args.batch_preset}: "
                  f"{per_photo:.1f} s per photo; at that rate 100 photos take "
                  f"{per_photo * 100 / 60:.1f} min (rate measured on {args.batch}, "
                  f"not on 100)")
    args.table.write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
