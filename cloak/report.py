"""What a protection run reports: invisibility, protection and cost."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

# Verdict thresholds on the weakest model's damage (dB): cloak verify's words.
VERDICTS = (("strong", 3.0), ("moderate", 1.5), ("weak", 0.5))


def shown_db(value: float, width: str = "", sign: str = "", places: int = 2) -> str:
    """A figure in dB to `places` decimals, rounded down, as it is judged against the
    verdict's and the receipt's thresholds (2.996 dB is "moderate", so it shows as 2.99,
    not 3.00)."""
    return format(stored_db(value, places), f"{sign}{width}.{places}f")


def stored_db(value: float, places: int = 3) -> float:
    """A damage figure as reports store it: rounded down to `places` decimals, so that
    a stored figure gets the verdict its measurement got (2.9996 dB stays "moderate":
    2.999, not 3.0). Rounded to 6 places first: 0.29 * 100 is 28.999..., kept as 0.29."""
    scale = 10 ** places
    return math.floor(round(value * scale, 6)) / scale


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """"1 photo", "2 photos" ("copy", "copies" with `nouns`)."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def verdict_for(damage_db: float) -> str:
    """"strong", "moderate", "weak" or "none" for the weakest model's damage in dB."""
    for name, threshold in VERDICTS:
        if damage_db >= threshold:
            return name
    return "none"


@dataclass
class Report:
    """Figures for one protected photo. PSNR/SSIM are vs the original at full size;
    damage_db is per autoencoder, as the photo is, at long side 512 (see metrics.damage_db)."""

    width: int
    height: int
    eps255: float
    psnr: float
    ssim: float
    max_change255: float
    damage_db: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    faces: int = 0
    device: str = "cpu"
    precision: str = "fp32"  # "bf16" (autocast) or "fp32": see device.autocast
    settings: dict = field(default_factory=dict)
    src: str | None = None
    dst: str | None = None
    preview: str | None = None

    @property
    def min_damage_db(self) -> float | None:
        return min(self.damage_db.values()) if self.damage_db else None

    def summary(self) -> str:
        """One line for humans."""
        damage = ", ".join(f"{k} {shown_db(v, places=1)}" for k, v in self.damage_db.items()
                           ) or "not measured"
        if self.damage_db:  # verify's word for the weakest model, as saved (a report of
            # cloak.protect, with no file, is of the pixels: "as is")
            damage += (f" ({verdict_for(self.min_damage_db)} "
                       f"{'as saved' if self.dst else 'as is'})")
        change = f"max change {self.max_change255:.0f}/255"
        if self.max_change255 > self.eps255 + 0.5:  # only a lossy (or fewer-bit) save
            # goes past eps
            change += f" (eps {self.eps255:g}; the rest is the format's own rounding)"
        return (f"PSNR {self.psnr:.1f} dB, SSIM {self.ssim:.3f}, {change} | damage dB: "
                f"{damage} | {self.seconds:.1f} s")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["min_damage_db"] = self.min_damage_db
        # the word the summary line gives, as saved (None: damage not measured)
        d["verdict"] = (verdict_for(self.min_damage_db) if self.min_damage_db is not None
                        else None)
        return d
