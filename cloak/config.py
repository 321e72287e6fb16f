"""A frozen `ProtectConfig` and the named strength presets. Validation happens here."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import numbers
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .metadata import MetadataPolicy
from .models.registry import ALL_MODEL_NAMES

# The visibility map's defaults (cloak/budget.py; chosen with benchmarks/budget_sweep.py)
FLAT_FLOOR = 0.1      # budget fraction left in perfectly flat areas
CONTRAST_REF = 0.1    # local std (on [0, 1]) that earns the full budget

OBJECTIVES = ("e2e", "latent", "encoder")


@dataclass(frozen=True)
class Preset:
    """Documented settings behind a `--strength` name. eps is in /255."""

    eps255: float
    steps: int
    working_size: int
    robust: bool
    eot_samples: int
    eot_share: float = 0.25  # share of rotation cycles drawn through posting transforms
    perceptual_weight: float = 0.0  # low-frequency colour-shift penalty vs the attack
    view_sizes: tuple[int, ...] = ()  # editing sizes the models see, in turn; () = working
    flat_floor: float = FLAT_FLOOR  # visibility map: budget share left in flat areas
    contrast_ref: float = CONTRAST_REF  # visibility map: local std that earns the full budget
    step_start: float = 0.5  # first sign step, as a share of the per-pixel bound (decays to 0.05)
    # Also attack the grid of editors that round their resize *down* to a multiple of 8
    # (diffusers; 512x336 for a 3:2 photo, where cloak's own rounding gives 512x344), in
    # turn with the nearest one. On the 14 dev photos whose grids differ, medium made for
    # the nearest grid alone kept 1.9/0.9/0.9/1.4 dB (median) on the other; both in turn
    # keep 3.3/1.1/1.4/2.0 on either, for 23-42% less on the nearest alone, at the same
    # time and PSNR (benchmarks/efficacy_grid.md, before the naive view below; README
    # "The editor's grid").
    both_roundings: bool = True
    # Also attack the photo as an editor that downscales it without antialiasing sees it
    # (cv2.resize's and torch's default bilinear; fine detail aliased, not averaged), one
    # rotation cycle in turn with the views above. Medium made without it kept 3.7/1.3/
    # 1.6/3.0 dB (median, 25 dev photos) through such a resize against 4.6/1.8/1.9/3.6
    # through cloak's (benchmarks/resize_filters.md); with it, on d09, d10, d12, d18 and
    # d25 (scratch run), the worse of the two per photo rose on every model (medians
    # 3.3/1.3/1.3/2.9 -> 4.0/1.5/1.6/3.2) at 0.1 dB more PSNR.
    naive_downscale: bool = True


# Numbers here are the product's promises; README's "Strength presets" table mirrors them
# (its size column is the largest of working_size and view_sizes, where the
# perturbation is optimised).
PRESETS: dict[str, Preset] = {
    # fast keeps more budget in flat areas: with its earlier 6 steps at 384 the map that
    # medium uses cut taesdxl/taef1 damage by ~40% (benchmarks/budget_sweep.py --strength
    # fast). It attacks at the 512 editing size: 4 steps there gave a higher median damage
    # than 6 at 384 on every model on 6 dev photos (taef2 after instagram tied in one run of
    # 4), for 10-20% more time: a perturbation made at 384 transfers poorly to 512
    # (benchmarks/fast_preset.md).
    "fast": Preset(eps255=8, steps=4, working_size=512, robust=False, eot_samples=1,
                   flat_floor=0.3, contrast_ref=0.05),
    "low": Preset(eps255=4, steps=24, working_size=512, robust=False, eot_samples=1,
                  perceptual_weight=0.3),
    # medium starts at a quarter-bound step: on 4 dev photos every model but taef2 gained
    # 0.2-0.3 dB over a half-bound start, at the same time (benchmarks/step_schedule.md).
    "medium": Preset(eps255=8, steps=32, working_size=512, robust=False, eot_samples=1,
                     step_start=0.25),
    # high also targets SDXL/FLUX's 1024 editing size: medium's damage there is ~1-2 dB.
    # A quarter-bound first step gained 0.2-0.9 dB on every model at both sizes, on 3 dev
    # photos, for 0.4 dB of PSNR (benchmarks/high_step.md).
    "high": Preset(eps255=12, steps=64, working_size=512, robust=False, eot_samples=1,
                   view_sizes=(512, 1024), step_start=0.25),
}


# The ranges a config takes (the CLI names its flags in the same checks, from these):
EPS255_RANGE = (1, 32)  # the budget in /255: under 1 an 8-bit photo can't change at all
SEED_LIMIT = 2 ** 63  # seeds are whole numbers from 0 to SEED_LIMIT - 1
EDITING_SIZES = (128, 2048, 8)  # editing sizes (long side, px): from, to, a multiple of


def editing_size_ok(size: int) -> bool:
    """Whether `size` is an editing size a config takes (EDITING_SIZES)."""
    low, high, multiple = EDITING_SIZES
    return low <= size <= high and size % multiple == 0


# The strength that protects more than each, as the CLI's --strength and the app's
# Strength box name it
STRONGER = {"fast": "medium (the default)", "low": "medium (the default)", "medium": "high"}


@dataclass(frozen=True)
class ProtectConfig:
    """Everything that decides a protection run. `eps` is on the [0, 1] scale.

    Leave a field as None to take it from the strength preset.
    """

    strength: str = "medium"
    eps: float | None = None
    steps: int | None = None
    working_size: int | None = None
    robust: bool | None = None
    eot_samples: int | None = None
    eot_share: float | None = None
    perceptual_weight: float | None = None
    view_sizes: tuple[int, ...] | None = None
    flat_floor: float | None = None
    contrast_ref: float | None = None
    step_start: float | None = None
    both_roundings: bool | None = None
    naive_downscale: bool | None = None
    models: tuple[str, ...] = ALL_MODEL_NAMES
    objective: str = "e2e"
    perceptual: bool = True
    faces: bool = True
    mask_path: str | None = None
    seed: int = 0
    model_dir: str | None = None
    device: str | None = None
    allow_download: bool = True
    measure: bool = True
    preview: bool = False  # also write NAME.EXT.preview.png beside each output (no pixel change)
    metadata: MetadataPolicy | None = None  # what the saved copy keeps; None: the default

    def __post_init__(self) -> None:
        if not isinstance(self.strength, str) or self.strength not in PRESETS:
            raise ConfigError(
                f"unknown strength {self.strength!r}; choose from {', '.join(PRESETS)}")
        preset = PRESETS[self.strength]
        defaults = {
            "eps": preset.eps255 / 255, "steps": preset.steps,
            "working_size": preset.working_size, "robust": preset.robust,
            "eot_samples": preset.eot_samples, "eot_share": preset.eot_share,
            "perceptual_weight": preset.perceptual_weight,
            "view_sizes": preset.view_sizes,
            "flat_floor": preset.flat_floor, "contrast_ref": preset.contrast_ref,
            "step_start": preset.step_start, "both_roundings": preset.both_roundings,
            "naive_downscale": preset.naive_downscale,
        }
        filled = [name for name in defaults if getattr(self, name) is None]
        for name in filled:
            object.__setattr__(self, name, defaults[name])
        # The fields filled from the preset (None as given), kept beside the fields (not
        # one: no part of equality, asdict or repr): `replace` gives them back to the
        # preset, so another strength brings its own numbers.
        object.__setattr__(self, "_from_preset", frozenset(filled))
        if isinstance(self.models, str):
            object.__setattr__(self, "models", tuple(
                m.strip() for m in self.models.split(",") if m.strip()))
        if not isinstance(self.models, (tuple, list)) or not all(
                isinstance(m, str) for m in self.models):
            raise ConfigError(f"models must be model names, as a tuple or one string such as "
                              f"'taesd,taef2', got {self.models!r}")
        for name in ("robust", "both_roundings", "naive_downscale", "perceptual", "faces",
                     "allow_download", "measure", "preview"):
            value = getattr(self, name)
            if isinstance(value, str) or value not in (True, False):  # numpy's bools too
                raise ConfigError(f"{name} must be True or False, got {value!r}")
            object.__setattr__(self, name, bool(value))
        if self.device is not None:
            if not isinstance(self.device, str) or not re.fullmatch(
                    r"auto|cpu|mps|cuda(:\d+)?", self.device.strip().lower() or "auto"):
                raise ConfigError(f"unknown device {self.device!r}; use auto, cpu, cuda "
                                  "(or cuda:N) or mps")
            object.__setattr__(self, "device", self.device.strip().lower() or None)
        if self.metadata is not None and not isinstance(self.metadata, MetadataPolicy):
            raise ConfigError(f"metadata must be a cloak.metadata.MetadataPolicy (such as "
                              f"MetadataPolicy.choose(keep_gps=True)), got "
                              f"{type(self.metadata).__name__}")
        for name in ("model_dir", "mask_path"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise ConfigError(f"{name} must be a path, got {value!r}")
            if value is not None:  # a Path as the text the report and record keep (JSON)
                value = os.fspath(value)
                if not isinstance(value, str):  # a bytes path
                    raise ConfigError(f"{name} must be a path as text, got {value!r}")
                if not value.strip():  # was taken as "not given": the other places searched
                    raise ConfigError(f"{name} is empty: give a path, or None")
                object.__setattr__(self, name, value)
        # each model once, in the order given: `taesd,taesd` would double its share of the
        # steps and record settings a later `--models taesd` takes for other ones; any
        # case, as verify_images and the CLI take them ("TAESD")
        object.__setattr__(self, "models", tuple(dict.fromkeys(
            m.strip().lower() for m in self.models)))
        if not self.models:
            raise ConfigError("at least one model is needed")
        for name in self.models:
            if name not in ALL_MODEL_NAMES:
                raise ConfigError(
                    f"unknown model {name!r}; choose from {', '.join(ALL_MODEL_NAMES)}")
        # eps below 1/255 rounds to no change at all in an 8-bit photo (whole steps only)
        if not isinstance(self.eps, numbers.Real) or isinstance(self.eps, bool):
            raise ConfigError(f"eps must be a number on the [0, 1] scale, got {self.eps!r}")
        low, high = EPS255_RANGE
        if not low / 255 - 1e-9 <= self.eps <= high / 255:
            hint = (f" (on the [0, 1] scale: did you mean eps={self.eps:g}/255?)"
                    if low <= self.eps <= high else "")
            raise ConfigError(
                f"eps must be in [{low}, {high}]/255, got {self.eps * 255:.3g}/255{hint}")
        for name in ("steps", "eot_samples", "working_size"):
            if not _whole(getattr(self, name)):
                raise ConfigError(f"{name} must be a whole number, got {getattr(self, name)!r}")
        # numpy numbers as plain Python ones: the report and the batch manifest are JSON
        for name in ("steps", "eot_samples", "working_size", "seed"):
            if _whole(getattr(self, name)):
                object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("eps", "eot_share", "perceptual_weight", "flat_floor", "contrast_ref",
                     "step_start"):
            value = getattr(self, name)
            if (not isinstance(value, numbers.Real) or isinstance(value, bool)
                    or not math.isfinite(value)):
                raise ConfigError(f"{name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.steps < 0:
            raise ConfigError(f"steps must be >= 0, got {self.steps}")
        if not (_whole(self.seed) and 0 <= self.seed < SEED_LIMIT):  # None too: runs repeat
            raise ConfigError(f"seed must be a whole number in [0, 2^63), got {self.seed!r}")
        low, high, multiple = EDITING_SIZES
        if not editing_size_ok(self.working_size):
            raise ConfigError(f"working size must be a multiple of {multiple} in [{low}, "
                              f"{high}], got {self.working_size}")
        if (not isinstance(self.view_sizes, (tuple, list))
                or not all(_whole(v) for v in self.view_sizes)):
            raise ConfigError(f"view sizes must be whole numbers, as a tuple such as "
                              f"(512, 1024), got {self.view_sizes!r}")
        # each size once, in the order given: 512,512 attacks as 512 does (the same copy),
        # and must not record settings that a later --editor-sizes 512 counts as others
        object.__setattr__(self, "view_sizes",
                           tuple(dict.fromkeys(int(v) for v in self.view_sizes)))
        for size in self.view_sizes:
            if not editing_size_ok(size):
                raise ConfigError(f"view sizes must be multiples of {multiple} in [{low}, "
                                  f"{high}], got {size}")
        if not 0 <= self.perceptual_weight <= 10:
            raise ConfigError(
                f"perceptual weight must be in [0, 10], got {self.perceptual_weight}")
        if not 0 <= self.flat_floor <= 1:
            raise ConfigError(f"flat floor must be in [0, 1], got {self.flat_floor}")
        if not self.contrast_ref > 0:
            raise ConfigError(f"contrast reference must be > 0, got {self.contrast_ref}")
        if not 0.05 <= self.step_start <= 1:
            raise ConfigError(f"step start must be in [0.05, 1], got {self.step_start}")
        if not 0 <= self.eot_share <= 1:
            raise ConfigError(f"eot share must be in [0, 1], got {self.eot_share}")
        if self.eot_samples < 1:
            raise ConfigError(f"eot samples must be >= 1, got {self.eot_samples}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(
                f"unknown objective {self.objective!r}; choose from {', '.join(OBJECTIVES)}")

    @property
    def draws_at_random(self) -> bool:
        """Whether the attack draws from the seeded generator (see draws_at_random)."""
        return draws_at_random(self.robust, self.eot_share, self.objective)

    @property
    def eps255(self) -> float:
        return self.eps * 255

    @property
    def editing_sizes(self) -> tuple[int, ...]:
        """Long sides the models see the photo at, in turn (() means the working size)."""
        return self.view_sizes or (self.working_size,)

    @property
    def attack_size(self) -> int:
        """Long side the perturbation is optimised at: the working size, raised to the
        largest editing size, whose detail the perturbation needs."""
        return max(self.working_size, *self.editing_sizes)

    def replace(self, **changes) -> ProtectConfig:
        """A copy with `changes`; the fields that came from the strength preset come from
        the new one's preset (ProtectConfig(strength="fast").replace(strength="high") has
        high's steps, not fast's), those given keep their values, even a value equal to
        the preset's (ProtectConfig(strength="fast", steps=4) keeps 4 steps)."""
        unset = {name: None for name in self._from_preset if name not in changes}
        return dataclasses.replace(self, **unset, **changes)

    def fingerprint(self) -> dict:
        """The settings that change the output file (used for resume and reports)."""
        preset = PRESETS[self.strength]
        return {
            "strength": self.strength, "eps255": round(self.eps255, 4), "steps": self.steps,
            "working_size": self.attack_size, "robust": self.robust,
            # Settings the attack does not use are recorded at their defaults (as the seed
            # below), so changing one alone does not count as a change: the posting
            # transforms only with robust (their number only where a share of cycles
            # draws them), the colour-shift penalty and the visibility map's shape only
            # with the map on (at the preset's own values, as earlier runs recorded them).
            "eot_samples": self.eot_samples if self.robust and self.eot_share > 0 else 1,
            "eot_share": self.eot_share if self.robust else Preset.eot_share,
            "perceptual_weight": self.perceptual_weight if self.perceptual else 0.0,
            "view_sizes": list(self.editing_sizes),
            "flat_floor": self.flat_floor if self.perceptual else preset.flat_floor,
            "contrast_ref": self.contrast_ref if self.perceptual else preset.contrast_ref,
            "step_start": self.step_start, "both_roundings": self.both_roundings,
            # Named only when on: a run with it off keeps the fingerprint of the runs made
            # before it existed, so their outputs still count as done.
            **({"naive_downscale": True} if self.naive_downscale else {}),
            "models": list(self.models),
            "objective": self.objective, "perceptual": self.perceptual, "faces": self.faces,
            "mask": self.mask_path, "mask_sha256": _file_digest(self.mask_path),
            # The seed only where something is drawn at random: other runs come out the
            # same whatever it is, so they are all recorded as seed 0 (the default, as
            # earlier runs recorded them) and another --seed does not count as a change.
            "seed": self.seed if self.draws_at_random else 0,
            # Only a non-default policy is named, so outputs of earlier runs still match.
            **({"metadata": dataclasses.asdict(self.metadata)}
               if self.metadata not in (None, MetadataPolicy()) else {}),
        }


def draws_at_random(robust: bool | None, eot_share: float | None, objective: str | None
                    ) -> bool:
    """Whether an attack with these settings draws from the seeded generator: the posting
    transforms of `robust` (on a share of its cycles), or the `latent` objective's random
    start. Otherwise the seed changes nothing."""
    return (bool(robust) and (eot_share or 0) > 0) or objective == "latent"


def _whole(value) -> bool:
    """An integer, numpy's included (not a bool, not a float such as 2.5 or nan)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _file_digest(path: str | None) -> str | None:
    """sha256 of a small file (the mask), so editing it counts as a change of settings;
    None without a path or when it can't be read (the run reports that itself)."""
    if not path:
        return None
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would wait for a writer
            return None
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except (OSError, ValueError):  # ValueError: a NUL in the name
        return None


def config_or_default(config: ProtectConfig | None) -> ProtectConfig:
    """`config`, or ProtectConfig() (medium) for None; a TypeError that shows the way for
    anything else (a preset's name given as the config: "fast")."""
    if config is None:
        return ProtectConfig()
    if not isinstance(config, ProtectConfig):
        hint = (f" (for the preset: ProtectConfig(strength={config!r}))"
                if isinstance(config, str) else "")
        raise TypeError(f"config must be a cloak.ProtectConfig, got "
                        f"{type(config).__name__}{hint}")
    return config
