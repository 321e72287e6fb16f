"""The channels cloak verify measures, by name, and what each posting preset does (size
cap, JPEG quality): plain data, so the CLI's --help lists them without loading torch.
cloak.channels applies them.
"""

from __future__ import annotations

# Approximations of what each platform does to an upload (size cap, JPEG quality): the cap
# is on the long side, except instagram's (below).
# Platforms change these without notice; treat them as typical, not exact.
SOCIAL_PRESETS: dict[str, tuple[int, int]] = {
    "instagram": (1080, 80),
    "facebook": (2048, 85),
    "x": (4096, 85),
    "whatsapp": (1600, 75),
}
# Instagram caps the *width* at 1080 px (a 3:4 portrait posts at 1080x1440) and takes
# aspect ratios from 3:4 (tall) to 1.91:1 (wide); a photo outside that range is cropped to
# it, centred unless the user moves the frame (Instagram's help centre, as of 2025).
INSTAGRAM_ASPECT = (3 / 4, 1.91)
CLEANUPS = ("jpeg95", "jpeg75", "jpeg50", "down-up", "blur", "crop", "grid", "naive")
ALL_CHANNELS = ("as-is", *SOCIAL_PRESETS, *CLEANUPS)  # every channel verify measures
