"""Library exceptions. The CLI turns each into one clear line: exit code 1 when raised
before any photo is processed (settings, weights, the output folder); an error on one
photo fails that photo only, with its own line, and the run exits 2."""


class CloakError(Exception):
    """Base class of every error cloak raises on purpose."""


class ConfigError(CloakError, ValueError):
    """A setting is out of range or unknown."""


class ModelError(CloakError):
    """Weights are missing, corrupt or of the wrong layout."""


class UnsupportedImageError(CloakError):
    """The file is not an image cloak can read, or is too small/large/broken."""


class OutputError(CloakError):
    """The output can't be written where asked (exists, equals the input, unwritable).
    `errno`: the operating system's error code where one caused it (ENOSPC: disk full)."""

    errno: int | None = None


class FolderInUseError(OutputError):
    """Another cloak (a `cloak protect` run, or a moment of another app window's record)
    holds the output folder's lock."""


class OutputFolderGoneError(OutputError):
    """The output folder a run locked was removed, moved or replaced while it ran: its
    lock no longer guards the folder at that name, so the run writes nothing more."""


class OutputExistsError(OutputError):
    """A file is already at the output's name and `overwrite` was not given; `path` is
    that name. A batch run takes this to mean the file there is not its own."""

    def __init__(self, path, message: str | None = None) -> None:
        self.path = path
        super().__init__(message or f"output {path} already exists; pass --overwrite to "
                         "replace it")

    def __reduce__(self):  # pickles back from a --jobs worker with its path (and state)
        return type(self), (self.path, str(self)), self.__dict__


class Cancelled(CloakError):
    """The user stopped the run; nothing was written for the photo in progress."""


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, torch's OutOfMemoryError on a GPU (a RuntimeError, "out of memory"), or
    torch's CPU allocator failing ("DefaultCPUAllocator: can't allocate memory" on Linux,
    "...: not enough memory" on Windows)."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        words in text for words in ("out of memory", "can't allocate memory",
                                    "not enough memory"))


def is_gpu_out_of_memory(exc: BaseException) -> bool:
    """is_out_of_memory, on a GPU's memory (CUDA, ROCm's HIP, Apple's MPS): the advice
    there is the CPU, not closing other programs."""
    text = str(exc).lower()
    return is_out_of_memory(exc) and any(
        words in text for words in ("cuda", "hip", "mps backend", "gpu"))


def out_of_memory_message(exc: BaseException, what: str, smaller: str,
                          cpu_switch: str = "use --device cpu") -> str:
    """The one line for an out-of-memory `exc` (is_out_of_memory) while doing `what`
    ("to protect this photo"): on a GPU, the CPU (`cpu_switch`) is the advice; else
    closing other programs, or `smaller` ("protect a smaller copy")."""
    if is_gpu_out_of_memory(exc):
        return (f"not enough GPU memory {what}; close other programs using the GPU, "
                f"or {cpu_switch}")
    return f"not enough memory {what}; close other programs, or {smaller}"


def raised_by_cloak(exc: BaseException) -> bool:
    """Whether `exc` is a programming error (TypeError, KeyError, IndexError,
    AttributeError, NameError) raised in cloak's own code rather than in a decoder or
    encoder it calls: such an error is cloak's bug to report, not damage in the user's
    file."""
    if not isinstance(exc, (TypeError, KeyError, IndexError, AttributeError, NameError)):
        return False
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    from pathlib import Path

    package = Path(__file__).resolve().parent
    return package in Path(tb.tb_frame.f_code.co_filename).resolve().parents
