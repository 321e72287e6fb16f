"""bf16 autocast vs fp32 for one attack step on this machine, and which one cloak picks.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/precision.py [--model taesdxl] \
        [--size 512x384] [--repeats 3] [--out benchmarks/precision.md]

One step is what cloak's PGD does per iteration: encoder + decoder forward and the
backward pass to the input, channels_last, for one model. bf16 pays only on CPUs that
compute it natively (AMX, AVX512-BF16); elsewhere oneDNN emulates it, and cloak's
`device.autocast` falls back to fp32. Both are timed in this one run (after one warm-up
step each) and written as a small table.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cloak.device import describe, uses_bf16
from cloak.models import load_autoencoder


def step_seconds(net, x: torch.Tensor, bf16: bool) -> float:
    """Seconds for one forward + backward-to-input pass."""
    xa = x.clone().requires_grad_(True)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    start = time.perf_counter()
    with ctx:
        loss = F.mse_loss(net.decode(net.encode(xa)).float(), x)
    torch.autograd.grad(loss, xa)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="taesdxl")
    ap.add_argument("--size", default="512x384", help="WIDTHxHEIGHT of the working image")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("precision.md"))
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
    lines = [
        f"## One attack step: bf16 autocast vs fp32 ({args.model}, {width}x{height})", "",
        (f"Command: `CLOAK_MODEL_DIR=../shared/models python benchmarks/precision.py "
        f"--model {args.model} --size {args.size} --repeats {args.repeats}`. "
        f"Machine: {describe(torch.device('cpu'))}, torch {torch.__version__}."), "",
        "| precision | median s/step | runs |", "|---|---|---|",
        *(f"| {k} | {statistics.median(v):.2f} | {', '.join(f'{t:.2f}' for t in v)} |"
          for k, v in runs.items()),
        "",
        f"bf16 / fp32 time: {bf16 / fp32:.2f}x. cloak picks **{picked}** on this machine.", ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
