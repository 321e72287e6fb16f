"""Speed levers for one attack step: fp32 vs bf16, channels_last, torch.compile, threads.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/levers.py [--repeats 5]

One "step" is what cloak's PGD does per iteration: encoder + decoder forward and the
backward pass to the input, for one model, on a 512x512 image (the working size). Prints
the median seconds per step for each model and lever, and the ratio to the baseline
(bf16 autocast, contiguous NCHW tensors, eager), all measured in this one run. cloak
itself runs channels_last (its HWC -> NCHW permute already gave channels_last strides;
the models are now also converted explicitly).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from cloak.models import ALL_MODEL_NAMES, load_autoencoder


def step_time(net, x: torch.Tensor, repeats: int, bf16: bool) -> float:
    def one() -> None:
        xa = x.clone().requires_grad_(True)
        if bf16:
            with torch.autocast(x.device.type, dtype=torch.bfloat16):  # forced: the lever measured
                loss = F.mse_loss(net.decode(net.encode(xa)).float(), x)
        else:
            loss = F.mse_loss(net.decode(net.encode(xa)).float(), x)
        torch.autograd.grad(loss, xa)

    one()  # warm-up (and compilation, for compiled models)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        one()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--models", default=",".join(ALL_MODEL_NAMES))
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    x = torch.rand(1, 3, args.size, args.size)
    threads = torch.get_num_threads()
    rows = []
    for name in args.models.split(","):
        net = load_autoencoder(name)
        net.to(memory_format=torch.contiguous_format)  # the cache holds channels_last models
        base = step_time(net, x, args.repeats, bf16=True)
        results = {"bf16, contiguous NCHW (baseline)": base,
                   "fp32": step_time(net, x, args.repeats, bf16=False)}
        net_cl = net.to(memory_format=torch.channels_last)
        results["bf16 + channels_last"] = step_time(
            net_cl, x.contiguous(memory_format=torch.channels_last), args.repeats, bf16=True)
        net.to(memory_format=torch.contiguous_format)
        if threads > 1:
            torch.set_num_threads(1)
            results["bf16, contiguous, 1 thread"] = step_time(net, x, args.repeats, bf16=True)
            torch.set_num_threads(threads)
        if not args.no_compile:
            start = time.perf_counter()
            try:
                compiled = torch.compile(net)
                results["bf16 + torch.compile"] = step_time(compiled, x, args.repeats, True)
                results["(compile warm-up s)"] = time.perf_counter() - start
            except Exception as exc:  # noqa: BLE001 - report, don't crash the benchmark
                print(f"{name}: torch.compile failed: {type(exc).__name__}: {exc}"[:300])
        net.to(memory_format=torch.channels_last)  # leave the shared cached model as found
        for lever, seconds in results.items():
            ratio = "" if lever.startswith("(") else f"{base / seconds:.2f}x"
            rows.append(f"| {name} | {lever} | {seconds:.3f} | {ratio} |")
        print("\n".join(rows[-len(results):]), flush=True)
    print(f"\n## One attack step at {args.size}x{args.size} (median of {args.repeats}; "
          f"{threads} threads; speed-up vs bf16 contiguous eager)\n")
    print("| model | lever | s/step | speed-up |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
