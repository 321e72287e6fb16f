"""bf16 autocast vs fp32 for one attack step on this machine, and which one cloak picks.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/precision.py [--model taesdxl] \
        [--size 512x384] [--repeats 3] [--out benchmarks/precision.md] \
        [--damage d01,d08,d14]

One step is what cloak's PGD does per iteration: encoder + decoder forward and the
backward pass to the input, channels_last, for one model. bf16 pays only on CPUs that
compute it natively (AMX, AVX512-BF16); elsewhere oneDNN emulates it, and cloak's
`device.autocast` falls back to fp32. Both are timed in this one run (after one warm-up
step each) and written as a small table.

With `--damage`, the listed dev photos are also protected at --strength medium in each
precision, and both outputs are measured the same way (verify's as-is damage, computed in
fp32), so the table says whether bf16 keeps the protection as well as saving time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cloak.device import cpu_has_fast_bf16, describe, uses_bf16
from cloak.models import load_autoencoder

DEFAULT_OUT = Path("benchmarks/precision.md")


def step_seconds(net, x: torch.Tensor, bf16: bool) -> float:
    """Seconds for one forward + backward-to-input pass."""
    xa = x.clone().requires_grad_(True)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    start = time.perf_counter()
    with ctx:
        loss = F.mse_loss(net.decode(net.encode(xa)).float(), x)
    torch.autograd.grad(loss, xa)
    return time.perf_counter() - start


@contextlib.contextmanager
def forced_precision(bf16: bool):
    """Inside it, cloak's autocast computes in bf16 (True) or fp32 (False)."""
    before = os.environ.get("CLOAK_CPU_BF16")
    os.environ["CLOAK_CPU_BF16"] = "1" if bf16 else "0"
    cpu_has_fast_bf16.cache_clear()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CLOAK_CPU_BF16")
        else:
            os.environ["CLOAK_CPU_BF16"] = before
        cpu_has_fast_bf16.cache_clear()


def damage_rows(prefixes: list[str], folder: Path) -> list[str]:
    """Protect each photo at medium in fp32 and in bf16; measure both in fp32."""
    import numpy as np
    from efficacy import dev_photos, load_rgb, to_image

    from cloak import ProtectConfig
    from cloak.models import ALL_MODEL_NAMES
    from cloak.pipeline import protect_array
    from cloak.verify import verify_images

    paths = dev_photos(folder, prefixes)
    config = ProtectConfig(strength="medium", measure=False)
    rows, totals = [], {"fp32": [], "bf16 autocast": []}
    clean_cache: dict = {}
    for path in paths:
        original = load_rgb(path)
        rgb = np.asarray(original, dtype=np.float32) / 255
        for label, bf16 in (("fp32", False), ("bf16 autocast", True)):
            with forced_precision(bf16):
                start = time.perf_counter()
                out = protect_array(rgb, config).rgb
                seconds = time.perf_counter() - start
            with forced_precision(False):
                v = verify_images(original, to_image(out), ("as-is",),
                                  clean_cache=clean_cache.setdefault(path.name, {}))
            damage = [v.channels[0].damage_db[m] for m in ALL_MODEL_NAMES]
            totals[label].append((v.psnr, damage, seconds))
            rows.append(f"| {path.name} | {label} | {v.psnr:.1f} | "
                        + " / ".join(f"{d:.2f}" for d in damage) + f" | {seconds:.0f} |")
            print(rows[-1], flush=True)
    for label, runs in totals.items():
        med = statistics.median
        rows.append(f"| **median** | {label} | {med(r[0] for r in runs):.1f} | "
                    + " / ".join(f"{med(r[1][i] for r in runs):.2f}"
                                 for i in range(len(ALL_MODEL_NAMES)))
                    + f" | {med(r[2] for r in runs):.0f} |")
    return ["", (f"Protection in each precision (--strength medium; damage in dB as the "
            f"photo is, {' / '.join(ALL_MODEL_NAMES)}, measured in fp32 for both):"), "",
            "| photo | precision | PSNR | damage | attack s |", "|---|---|---|---|---|", *rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="taesdxl")
    ap.add_argument("--size", default="512x384", help="WIDTHxHEIGHT of the working image")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--damage", default="",
                    help="dev photo prefixes (d01,d08) to protect in both precisions")
    ap.add_argument("--folder", type=Path, default=Path("../shared/photos/dev"))
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    x = torch.rand(1, 3, height, width).contiguous(memory_format=torch.channels_last)
    net = load_autoencoder(args.model, device=torch.device("cpu"))
    runs = {}
    for label, bf16 in (("fp32", False), ("bf16 autocast", True)):
        step_seconds(net, x, bf16)  # warm-up: kernel creation, first touch of memory
        runs[label] = [step_seconds(net, x, bf16) for _ in range(args.repeats)]
        print(label, [round(t, 2) for t in runs[label]], flush=True)
    fp32, bf16 = (statistics.median(runs[k]) for k in ("fp32", "bf16 autocast"))
    picked = "bf16 autocast" if uses_bf16(torch.device("cpu")) else "fp32"
    command = (f"CLOAK_MODEL_DIR=../shared/models python benchmarks/precision.py "
               f"--model {args.model} --size {args.size} --repeats {args.repeats}"
               + (f" --damage {args.damage}" if args.damage else "")
               + (f" --out {args.out}" if args.out != DEFAULT_OUT else ""))
    lines = [
        f"## One attack step: bf16 autocast vs fp32 ({args.model}, {width}x{height})", "",
        (f"Command: `{command}`. Machine: {describe(torch.device('cpu'))}, "
        f"torch {torch.__version__}."), "",
        "| precision | median s/step | runs |", "|---|---|---|",
        *(f"| {k} | {statistics.median(v):.2f} | {', '.join(f'{t:.2f}' for t in v)} |"
          for k, v in runs.items()),
        "",
        f"bf16 / fp32 time: {bf16 / fp32:.2f}x. cloak picks **{picked}** on this machine.", ""]
    if args.damage:
        lines += [*damage_rows(args.damage.split(","), args.folder), ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
