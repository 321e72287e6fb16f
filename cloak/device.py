"""Pick the compute device (cuda -> mps -> cpu) and the matching autocast."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform
import re

import torch

from .errors import ConfigError

log = logging.getLogger(__name__)

DEVICE_ENV = "CLOAK_DEVICE"  # the device the CLI's --device and the app take by default


def _cuda_archs(arch_list: list[str]) -> list[tuple[str, tuple[int, int]]]:
    """("sm" or "compute", (major, minor)) for each NVIDIA entry of `arch_list` ("sm_90a",
    an arch-specific build, counts as sm_90); ROCm's "gfx90a" and the like are left out."""
    parsed = []
    for arch in arch_list:
        kind, _, number = arch.partition("_")
        digits = re.match(r"\d+", number)
        if kind in ("sm", "compute") and digits:
            value = int(digits.group())
            parsed.append((kind, (value // 10, value % 10)))
    return parsed


def arch_runs(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Whether a torch build compiled for `arch_list` (torch.cuda.get_arch_list(): "sm_80",
    "compute_90", ...) runs kernels on a GPU of compute `capability` (major, minor): a
    binary for sm_XY runs on major X, minor >= Y; PTX for compute_XY is compiled for any
    GPU at XY or newer. A list with no NVIDIA entry (not known, or a ROCm build's gfx
    names) counts as runnable."""
    archs = _cuda_archs(arch_list)
    if not archs:
        return True
    major, minor = capability
    for kind, built in archs:
        if kind == "sm" and built[0] == major and built[1] <= minor:
            return True
        if kind == "compute" and built <= (major, minor):
            return True
    return False


@functools.cache
def older_than_build(index: int | None = None) -> str | None:
    """'the GPU NAME (sm_XY) is older than this torch build supports (...)' where CUDA GPU
    `index` (None: the current one) can't run this build's kernels, else None."""
    try:
        capability = torch.cuda.get_device_capability(index)
        arch_list = torch.cuda.get_arch_list()
        name = torch.cuda.get_device_name(index)
    except (RuntimeError, AssertionError, ValueError):
        return None
    if arch_runs(tuple(capability), list(arch_list)):
        return None
    oldest = min(built for _, built in _cuda_archs(list(arch_list)))
    age = "older than" if tuple(capability) < oldest else "not among the GPUs"
    return (f"the GPU {name} (sm_{capability[0]}{capability[1]}) is {age} this torch "
            f"build supports ({', '.join(arch_list)})")


def cuda_unusable_reason() -> str | None:
    """Why the CUDA GPU torch sees can't run this torch build's kernels (a card older
    than the generations the build was compiled for), or None. Auto
    device choice then skips it, rather than failing every photo with "no kernel image
    is available"."""
    older = older_than_build()
    return older and (f"{older}, so the CPU is used; install a torch build for it "
                      "(README: GPU install)")


def pick_device(preference: str | None = None) -> torch.device:
    """`None`/"auto" picks cuda (unless this torch build can't run on that GPU:
    cuda_unusable_reason), then mps, then cpu; anything else is taken as asked."""
    if preference in (None, "", "auto"):
        if torch.cuda.is_available() and cuda_unusable_reason() is None:
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preference)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {preference!r}; use auto, cpu, cuda (or cuda:N) or mps") from exc
    if device.type not in ("cpu", "cuda", "mps") or (  # torch knows meta, xpu...: cloak not
            device.type != "cuda" and device.index is not None):  # cpu:0 (ProtectConfig's rule)
        raise ConfigError(f"unknown device {preference!r}; use auto, cpu, cuda (or cuda:N) or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {preference} was asked for, but no CUDA GPU is available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device {preference} was asked for, but this machine has "
                          f"{torch.cuda.device_count()} CUDA GPU(s), numbered from 0")
    if device.type == "cuda" and (older := older_than_build(device.index or 0)):
        raise ConfigError(f"device {preference} was asked for, but {older}; use --device "
                          "cpu, or install a torch build for it (README: GPU install)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None)
                                     and torch.backends.mps.is_available()):
        raise ConfigError("device mps was asked for, but this machine has no Apple GPU")
    return device


CPU_BF16_ENV = "CLOAK_CPU_BF16"  # 1 or 0: bf16 or fp32 on the CPU, whatever its flags say


def cpu_bf16_forced() -> bool | None:
    """CLOAK_CPU_BF16 as set: True for 1, False for 0; None when unset. Any other value
    is ignored, with a warning (once a value)."""
    value = os.environ.get(CPU_BF16_ENV, "").strip()
    if value in ("0", "1"):
        return value == "1"
    if value:
        _warn_ignored_bf16_setting(value)
    return None


@functools.cache
def _warn_ignored_bf16_setting(value: str) -> None:
    log.warning("ignoring %s=%r: use 1 (compute in bf16) or 0 (compute in fp32); the "
                "CPU's own flags decide", CPU_BF16_ENV, value)


def cpu_bf16_in_hardware() -> bool:
    """Whether this CPU computes bf16 natively (x86: AMX or AVX512-BF16; Arm: the BF16
    extension), whatever CLOAK_CPU_BF16 says."""
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86"):
        checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
    try:  # Arm and others: oneDNN's own bf16 check
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether cloak computes in bf16 on this CPU: where it has native bf16
    (cpu_bf16_in_hardware), unless CLOAK_CPU_BF16=1 or 0 says otherwise. Without native
    bf16 oneDNN emulates it: on a 2-core AVX2 EPYC one taesdxl attack step at 512x384
    took 89.7 s under bf16 autocast against 2.9 s in fp32 (benchmarks/precision.md)."""
    forced = cpu_bf16_forced()
    return cpu_bf16_in_hardware() if forced is None else forced


@functools.cache
def cuda_has_fast_bf16(index: int | None = None) -> bool:
    """Whether the GPU computes bf16 natively: compute capability 8.0 (Ampere) or newer.
    Older cards (T4, V100, GTX/RTX 20xx) run bf16 convolutions through slow fallbacks, as
    CPUs without native bf16 do."""
    try:
        return torch.cuda.get_device_capability(index) >= (8, 0)
    except (RuntimeError, AssertionError, ValueError):  # no CUDA here
        return False


def uses_bf16(device: torch.device) -> bool:
    """Whether `autocast(device)` computes in bf16: on an Ampere or newer GPU, and on a cpu
    with native bf16."""
    if device.type == "cuda":
        return cuda_has_fast_bf16(device.index)
    return device.type == "cpu" and cpu_has_fast_bf16()


def autocast(device: torch.device):
    """bf16 autocast on Ampere or newer GPUs, and on cpus that compute bf16 natively
    (~1.5-3x faster than fp32 there, same damage); plain fp32 on other cpus, where
    emulated bf16 was 31x slower, on older GPUs, and on mps."""
    if uses_bf16(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: torch.device) -> str:
    """One line for benchmark tables and logs, e.g.
    'cpu: AMD EPYC, 2 cores, 2 threads, fp32 (no native bf16)'."""
    precision = "bf16 autocast" if uses_bf16(device) else "fp32"
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}, {precision}"
    if device.type == "cpu":
        native = ("" if uses_bf16(device) else f" ({CPU_BF16_ENV}=0)"
                  if cpu_bf16_forced() is False else " (no native bf16)")
        return (f"cpu: {cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} "
                f"threads, {precision}{native}")
    return f"{device.type}, {precision}"


def fp32_cpu_note(device: torch.device, strength: str) -> str | None:
    """A one-line heads-up for a CPU without native bf16 (cloak computes fp32 there, so
    every preset but `fast` takes minutes); None on other devices and at `fast`.
    The seconds are from benchmarks/speed_avx2.md (2-core AVX2 EPYC, 12 MP photo: medium
    89.9 s median of 3 runs, without the damage check; fast was 15.1 s there with its
    earlier 6 steps at 384 px, not measured since it changed) and from a user trial on
    that CPU (a square 1.4 MP photo, 155 s at medium with its damage measured, one run),
    and the README's example on a busier day (`cloak protect examples/astronaut.jpg`,
    512 px, 165 s with its damage measured, one run)."""
    if device.type != "cpu" or uses_bf16(device) or strength == "fast":
        return None
    if cpu_bf16_in_hardware():  # CLOAK_CPU_BF16=0 on a CPU that has it
        return (f"note: {CPU_BF16_ENV}=0 is set, so cloak computes in fp32, though this "
                f"CPU has native bf16 (1.5 to 3 times faster); unset {CPU_BF16_ENV} to "
                "use it.")
    return ("note: this CPU has no native bf16, so cloak computes in fp32. On a 2-core "
            "AVX2 CPU medium took 1.5 to 3 minutes a photo (90 s for a 12 MP photo "
            "without the damage check, 155-165 s for smaller ones with it). The fast preset "
            "(--strength fast) runs far fewer attack steps and protects less (README, Speed).")
