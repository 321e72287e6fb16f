"""Two small speed levers, each measured in one run against what it replaced.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/inplace_lever.py [--repeats 5]
        [--table benchmarks/inplace_lever.md]

1. In-place activations. cloak's blocks apply their ReLUs and the skip add in place on
   the convolutions' fresh outputs. This times one attack step (encoder + decoder forward,
   backward to the input) at 512x384, channels_last, in the precision cloak picks on this
   machine, for each model, alternating the models as they are with an out-of-place copy
   (the plain formula, ReLU(conv(ReLU(conv(ReLU(conv(x))))) + x)), and checks that both
   give the same gradient bit for bit.
2. The round-trip filter's cache. A 12 MP photo's round-trip filter (pipeline.
   round_trip_kernel) fitted anew against taken from the cache, as the second photo of a
   batch from one camera gets it.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from cloak import metrics
from cloak.device import autocast, describe, pick_device
from cloak.models import ALL_MODEL_NAMES, load_autoencoder
from cloak.models.taesd import Block
from cloak.pipeline import _round_trip_kernel, round_trip_kernel


def out_of_place(model: nn.Module) -> nn.Module:
    """A copy of `model` whose blocks and ReLUs allocate new tensors, as before."""
    twin = copy.deepcopy(model)
    for layer in twin.modules():
        if isinstance(layer, nn.ReLU):
            layer.inplace = False
        if isinstance(layer, Block):
            def forward(x, block=layer):
                if block.pool is not None:
                    x = x + block.pool(x)
                return torch.relu(block.conv(x) + x)
            layer.forward = forward
    return twin


def step(model: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    xa = x.clone().requires_grad_(True)
    with autocast(device):
        out = model(xa)
    loss = (out.float() - x).pow(2).mean()
    return torch.autograd.grad(loss, xa)[0]


def timed(fn, *args) -> float:
    """Seconds `fn(*args)` takes, to the end of its GPU work where there is any."""
    start = time.perf_counter()
    fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--table", type=Path, help="Also write the tables as markdown.")
    args = parser.parse_args()
    device = pick_device()
    x = torch.rand(1, 3, 384, 512, generator=torch.Generator().manual_seed(0)).to(
        device, memory_format=torch.channels_last)
    lines = [f"Machine: {describe(device)}, torch {torch.__version__}.", "",
             "| model | in place s/step | out of place s/step | ratio | same gradient |",
             "|---|---|---|---|---|"]
    for name in ALL_MODEL_NAMES:
        model = load_autoencoder(name, device=device)
        twin = out_of_place(model)
        same = torch.equal(step(model, x, device), step(twin, x, device))  # and warm-up
        ours, theirs = [], []
        for _ in range(args.repeats):  # alternated: drift in the machine's speed hits both
            ours.append(timed(step, model, x, device))
            theirs.append(timed(step, twin, x, device))
        a, b = statistics.median(ours), statistics.median(theirs)
        lines.append(f"| {name} | {a:.2f} | {b:.2f} | {a / b:.2f}x | {same} |")
        print(lines[-1], flush=True)
    full, work = (3000, 4000), metrics.long_side_dims(3000, 4000, 512)
    _round_trip_kernel.cache_clear()
    fresh = [timed(lambda: (_round_trip_kernel.cache_clear(),
                            round_trip_kernel(full, work))) for _ in range(args.repeats)]
    cached = [timed(lambda: round_trip_kernel(full, work)) for _ in range(args.repeats)]
    lines += ["", "| round-trip filter, 4000x3000 photo | median s |", "|---|---|",
              f"| fitted anew | {statistics.median(fresh):.3f} |",
              f"| from the cache | {statistics.median(cached):.4f} |"]
    print("\n".join(lines[-4:]))
    if args.table:
        args.table.write_text("# In-place activations and the round-trip filter's cache\n\n"
                              f"Command: `CLOAK_MODEL_DIR=../shared/models python "
                              f"benchmarks/inplace_lever.py --repeats {args.repeats} "
                              f"--table {args.table}`.\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
