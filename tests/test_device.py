"""Device choice and the autocast that goes with it: bf16 only where the hardware has it."""

from __future__ import annotations

import pytest
import torch

from cloak import device as device_mod
from cloak.device import autocast, cpu_has_fast_bf16, describe, pick_device, uses_bf16
from cloak.errors import ConfigError


def conv_dtype_under(ctx) -> torch.dtype:
    conv = torch.nn.Conv2d(3, 4, 3)
    with ctx:
        return conv(torch.rand(1, 3, 8, 8)).dtype


class TestAutocast:
    def test_cpu_without_native_bf16_runs_fp32(self, bf16_env):
        bf16_env("0")
        assert not uses_bf16(torch.device("cpu"))
        assert conv_dtype_under(autocast(torch.device("cpu"))) == torch.float32

    def test_cpu_with_native_bf16_runs_bf16(self, bf16_env):
        bf16_env("1")
        assert uses_bf16(torch.device("cpu"))
        assert conv_dtype_under(autocast(torch.device("cpu"))) == torch.bfloat16

    def test_hardware_check_follows_the_cpu_flags(self, bf16_env, monkeypatch):
        bf16_env(None)
        monkeypatch.setattr(device_mod.platform, "machine", lambda: "x86_64")
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False,
                            raising=False)
        assert not cpu_has_fast_bf16()
        cpu_has_fast_bf16.cache_clear()
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True,
                            raising=False)
        assert cpu_has_fast_bf16()

    def test_hardware_check_matches_the_kernels_cpu_flags(self, bf16_env):
        """Unpatched: torch's answer on this machine agrees with the flags Linux reports."""
        import platform
        import re
        from pathlib import Path

        cpuinfo = Path("/proc/cpuinfo")
        if platform.machine() != "x86_64" or not cpuinfo.is_file():
            pytest.skip("needs x86_64 Linux")
        bf16_env(None)
        flags = set(re.search(r"^flags\s*:(.*)$", cpuinfo.read_text(), re.MULTILINE).group(1).split())
        assert cpu_has_fast_bf16() == bool({"avx512_bf16", "amx_tile"} & flags)

    def test_describe_names_the_precision_in_use(self, bf16_env):
        bf16_env(None, hardware=False)
        assert describe(torch.device("cpu")).endswith("fp32 (no native bf16)")
        bf16_env("0", hardware=True)
        assert describe(torch.device("cpu")).endswith("fp32 (CLOAK_CPU_BF16=0)")
        bf16_env("1")
        assert describe(torch.device("cpu")).endswith("bf16 autocast")

    def test_cuda_and_mps(self, bf16_env, monkeypatch):
        """bf16 on a GPU only from compute capability 8.0 (the capability is faked: this
        machine may have no GPU)."""
        bf16_env("0")
        for capability, expected in (((8, 0), True), ((9, 0), True), ((7, 5), False)):
            device_mod.cuda_has_fast_bf16.cache_clear()
            monkeypatch.setattr(torch.cuda, "get_device_capability",
                                lambda index=None, c=capability: c)
            assert uses_bf16(torch.device("cuda")) is expected
        device_mod.cuda_has_fast_bf16.cache_clear()
        assert not uses_bf16(torch.device("mps"))

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
    def test_a_real_gpu_uses_bf16_from_ampere(self):
        device_mod.cuda_has_fast_bf16.cache_clear()
        ampere = torch.cuda.get_device_capability() >= (8, 0)
        assert uses_bf16(torch.device("cuda")) is ampere


class TestPickDevice:
    def test_auto_picks_an_available_device(self):
        if torch.cuda.is_available():
            expected = "cuda"
        elif torch.backends.mps.is_available():
            expected = "mps"
        else:
            expected = "cpu"
        for preference in ("auto", None, ""):
            assert pick_device(preference).type == expected

    def test_auto_prefers_cuda_then_mps_then_cpu(self, monkeypatch):
        """The order, with availability faked (this machine may have neither GPU)."""
        for cuda, mps, expected in ((True, True, "cuda"), (False, True, "mps"),
                                    (False, False, "cpu")):
            monkeypatch.setattr(torch.cuda, "is_available", lambda c=cuda: c)
            monkeypatch.setattr(torch.backends.mps, "is_available", lambda m=mps: m)
            assert pick_device("auto").type == expected

    def test_auto_skips_a_gpu_older_than_the_torch_build(self, monkeypatch):
        """A GTX 1080 (sm_61) under a build made for sm_75 and newer: torch says CUDA is
        available, but no kernel would run; auto takes the CPU and says why, and a device
        named (`--device cuda`, CLOAK_DEVICE) is refused with the reason instead of
        failing in the model load (faked: this machine has no GPU)."""
        from cloak.device import cuda_unusable_reason, older_than_build

        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (6, 1))
        monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_75", "sm_80", "sm_90"])
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "GeForce GTX 1080")
        older_than_build.cache_clear()
        try:
            assert pick_device("auto").type == "cpu"
            assert "GeForce GTX 1080 (sm_61) is older than this torch build" in \
                cuda_unusable_reason()
            for named in ("cuda", "cuda:0"):
                with pytest.raises(ConfigError, match=r"GTX 1080 \(sm_61\) is older.*"
                                                      r"--device cpu"):
                    pick_device(named)
            monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 6))
            older_than_build.cache_clear()
            assert pick_device("auto").type == "cuda" and cuda_unusable_reason() is None
            assert pick_device("cuda") == torch.device("cuda")
        finally:
            older_than_build.cache_clear()

    def test_which_builds_run_on_which_gpus(self):
        from cloak.device import arch_runs

        build = ["sm_75", "sm_80", "sm_86", "sm_90"]
        assert arch_runs((8, 9), build)  # sm_86's binary runs on 8.9
        assert arch_runs((7, 5), build)
        assert not arch_runs((7, 0), build)  # V100: older than the build
        assert not arch_runs((6, 1), build)
        assert not arch_runs((12, 0), build)  # newer major, no PTX to compile
        assert arch_runs((12, 0), [*build, "compute_90"])  # PTX compiled for it
        assert not arch_runs((8, 0), ["sm_86"])  # a binary for 8.6 needs 8.6 or newer
        assert arch_runs((6, 1), [])  # nothing known: trusted
        # a ROCm build names gfx targets, which say nothing about NVIDIA's: trusted (a
        # named --device cuda was refused there, as if the GPU were too old)
        assert arch_runs((9, 0), ["gfx900", "gfx90a", "gfx942"])
        assert arch_runs((9, 0), ["sm_80", "sm_90a"])  # an arch-specific 9.0 binary
        assert not arch_runs((8, 6), ["sm_90a", "sm_100a"])

    def test_a_gpu_newer_than_the_build_is_not_called_older(self, monkeypatch):
        from cloak.device import older_than_build

        monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_80", "sm_90"])
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Next GPU")
        for capability, said in (((12, 0), "is not among the GPUs this torch build"),
                                 ((7, 0), "is older than this torch build")):
            monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, c=capability: c)
            older_than_build.cache_clear()
            try:
                assert said in older_than_build(0)
            finally:
                older_than_build.cache_clear()

    def test_cpu_on_request(self):
        assert pick_device("cpu") == torch.device("cpu")

    def test_unknown_device_is_a_clear_error(self):
        with pytest.raises(ConfigError, match="unknown device"):
            pick_device("gpu9000")

    @pytest.mark.parametrize("name", ["meta", "xpu", "hpu", "vulkan"])
    def test_a_device_torch_knows_but_cloak_does_not_is_refused(self, name):
        """torch.device takes these; a model moved there crashed with a traceback (xpu on
        a build without it) or "ran" without weights (meta)."""
        with pytest.raises(ConfigError, match=r"use auto, cpu, cuda \(or cuda:N\) or mps"):
            pick_device(name)

    def test_a_missing_gpu_is_a_clear_error(self):
        if not torch.cuda.is_available():
            with pytest.raises(ConfigError, match="no CUDA GPU"):
                pick_device("cuda")
            # the device asked for, as typed ("device cuda" lost the index)
            with pytest.raises(ConfigError, match="device cuda:1 was asked for"):
                pick_device("cuda:1")
        if not torch.backends.mps.is_available():
            with pytest.raises(ConfigError, match="no Apple GPU"):
                pick_device("mps")


class TestFp32CpuNote:
    def test_cpu_without_native_bf16_gets_a_note_except_at_fast(self, bf16_env):
        for setting in (None, "0"):  # fp32 by the CPU's flags, or also by the setting
            bf16_env(setting, hardware=False)
            note = device_mod.fp32_cpu_note(torch.device("cpu"), "medium")
            assert note.startswith("note: this CPU has no native bf16, so cloak computes "
                                   "in fp32") and "fast preset" in note
            assert device_mod.fp32_cpu_note(torch.device("cpu"), "fast") is None

    def test_fp32_forced_on_a_bf16_cpu_names_the_setting(self, bf16_env):
        """CLOAK_CPU_BF16=0 on a CPU that has bf16: the note names the setting, not a CPU
        without bf16."""
        bf16_env("0", hardware=True)
        note = device_mod.fp32_cpu_note(torch.device("cpu"), "medium")
        assert note.startswith("note: CLOAK_CPU_BF16=0 is set, so cloak computes in fp32")
        assert "no native bf16" not in note and "unset CLOAK_CPU_BF16" in note

    def test_a_setting_other_than_0_or_1_is_ignored_with_a_warning(self, bf16_env, caplog):
        device_mod._warn_ignored_bf16_setting.cache_clear()
        for hardware in (False, True):
            bf16_env("maybe", hardware=hardware)
            with caplog.at_level("WARNING", logger="cloak.device"):
                assert device_mod.cpu_has_fast_bf16() is hardware
        warnings = [r.getMessage() for r in caplog.records if r.name == "cloak.device"]
        assert warnings == [("ignoring CLOAK_CPU_BF16='maybe': use 1 (compute in bf16) or "
                             "0 (compute in fp32); the CPU's own flags decide")]  # once

    def test_no_note_where_bf16_runs(self, bf16_env):
        bf16_env("1")
        assert device_mod.fp32_cpu_note(torch.device("cpu"), "medium") is None
        assert device_mod.fp32_cpu_note(torch.device("cuda"), "high") is None
