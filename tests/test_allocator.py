"""cloak.allocator: big freed blocks stay in the process for the next attack step."""

import os
import platform
import subprocess
import sys
import textwrap

import pytest

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="mallopt thresholds are a glibc feature")

# Allocates and frees a 64 MiB block, then prints: whether the thresholds were set, the
# bytes glibc served by mmap while the block was alive, and the heap bytes kept after free.
PROBE = textwrap.dedent("""
    import ctypes, sys
    from cloak.allocator import keep_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    applied = keep_freed_memory()
    block = libc.malloc(64 << 20)
    ctypes.memset(block, 1, 64 << 20)
    mapped = libc.mallinfo2().hblkhd
    libc.free(block)
    print(applied, mapped, libc.mallinfo2().arena)
""")


def probe(keep: str) -> tuple[bool, int, int]:
    env_code = f"import os; os.environ['CLOAK_KEEP_FREED_MEMORY'] = {keep!r}\n"
    out = subprocess.run([sys.executable, "-c", env_code + PROBE], capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0] == "True", int(out[1]), int(out[2])


@glibc_only
def test_keep_freed_memory_serves_big_blocks_from_a_kept_heap():
    applied, mapped, kept = probe("1")
    assert applied
    assert mapped < 64 << 20  # not a fresh mmap, so no page faults the next time
    assert kept >= 64 << 20  # still in the process after free, ready for reuse


@glibc_only
@pytest.mark.parametrize("off", ["0", "false", " Off "])
def test_opt_out_leaves_glibc_defaults(off):
    """Turned off by the words CLOAK_OFFLINE takes too ("false" was taken as on)."""
    applied, mapped, _ = probe(off)
    assert not applied
    assert mapped >= 64 << 20  # glibc's default: a 64 MiB block is its own mmap


@glibc_only
def test_the_setting_is_taken_once_per_process():
    code = ("import os; from cloak.allocator import keep_freed_memory\n"
            "first = keep_freed_memory()\n"
            "os.environ['CLOAK_KEEP_FREED_MEMORY'] = '0'\n"
            "print(first, keep_freed_memory())")
    env = {k: v for k, v in os.environ.items() if k != "CLOAK_KEEP_FREED_MEMORY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env).stdout.split()
    assert out == ["True", "True"]  # a later opt-out does not undo what was set


@glibc_only
def test_release_gives_the_kept_memory_back():
    """What keep_freed_memory keeps is given back by release_freed_memory (the app calls
    it when a batch ends): resident memory falls by most of a freed 256 MiB block."""
    code = textwrap.dedent("""
        import ctypes, os
        from cloak.allocator import keep_freed_memory, release_freed_memory

        def resident() -> int:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

        libc = ctypes.CDLL("libc.so.6")
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        assert keep_freed_memory()
        block = libc.malloc(256 << 20)
        ctypes.memset(block, 1, 256 << 20)
        libc.free(block)
        kept = resident()
        released = release_freed_memory()
        print(released, kept - resident())
    """)
    env = {k: v for k, v in os.environ.items() if k != "CLOAK_KEEP_FREED_MEMORY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env).stdout.split()
    assert out[0] == "True" and int(out[1]) > 200 << 20, out


def test_release_does_nothing_where_memory_was_not_kept():
    code = ("import os; os.environ['CLOAK_KEEP_FREED_MEMORY'] = '0'\n"
            "from cloak.allocator import keep_freed_memory, release_freed_memory\n"
            "keep_freed_memory(); print(release_freed_memory())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False"]
