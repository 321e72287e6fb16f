"""torch.compile as a speed lever, against the eager path cloak runs (bf16, channels_last).

    CLOAK_MODEL_DIR=../shared/models python benchmarks/compile_lever.py

One attack step on taesd at 512x512 (encoder + decoder forward, backward to the input):
median of 5 eager steps, then the same with the encoder and decoder compiled, plus the
compile warm-up. Prints the figures (recorded in benchmarks/levers.md).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from cloak.device import autocast
from cloak.models import load_autoencoder


def step(encode, decode, x: torch.Tensor) -> None:
    xa = x.clone().requires_grad_(True)
    with autocast(x.device):
        loss = F.mse_loss(decode(encode(xa)).float(), x)
    torch.autograd.grad(loss, xa)


def median_step(encode, decode, x: torch.Tensor, repeats: int = 5) -> float:
    step(encode, decode, x)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(encode, decode, x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    net = load_autoencoder("taesd")  # the cache holds channels_last models
    x = torch.rand(1, 3, 512, 512).contiguous(memory_format=torch.channels_last)
    eager = median_step(net.encoder, net.decoder, x)
    print(f"eager (bf16, channels_last): {eager:.3f} s/step", flush=True)
    start = time.perf_counter()
    encoder, decoder = torch.compile(net.encoder), torch.compile(net.decoder)
    step(encoder, decoder, x)
    warm_up = time.perf_counter() - start
    compiled = median_step(encoder, decoder, x)
    print(f"compiled: {compiled:.3f} s/step; warm-up {warm_up:.0f} s; "
          f"speed-up {eager / compiled:.2f}x")


if __name__ == "__main__":
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    main()
