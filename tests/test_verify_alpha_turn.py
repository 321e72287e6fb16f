"""verify: a transparent photo as the posting presets see it (flattened onto white), and
a copy turned 180 degrees or mirrored against its original (an error saying so)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cloak import UnsupportedImageError
from cloak.channel_list import SOCIAL_PRESETS
from cloak.channels import apply_channel, flatten
from cloak.comparable import check_comparable
from cloak.verify import photo_image, verify_images

T = Image.Transpose


def transparent(rgb: np.ndarray) -> Image.Image:
    """RGBA: the left half fully transparent, a band along the top of the right half half
    transparent (128), the rest opaque; the colour under all of it kept as given."""
    h, w = rgb.shape[:2]
    alpha = np.full((h, w), 255, np.uint8)
    alpha[:, : w // 2] = 0
    alpha[:8, w // 2:] = 128
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


def test_posting_presets_see_transparency_flattened_onto_white_other_channels_drop_it():
    rgb = np.random.default_rng(0).integers(0, 256, (64, 96, 3), np.uint8)
    image = transparent(rgb)
    flat = np.asarray(flatten(image), dtype=np.int16)
    assert (flat[:, :48] == 255).all()  # fully transparent: white, whatever lay under it
    assert np.array_equal(flat[8:, 48:], rgb[8:, 48:])  # opaque: as it is
    half = (rgb[:8, 48:].astype(np.float64) * 128 + 255 * 127) / 255
    assert np.abs(flat[:8, 48:] - half).max() <= 1
    opaque = Image.fromarray(rgb)
    assert flatten(opaque) is opaque
    for preset in SOCIAL_PRESETS:  # a platform's JPEG of the flattened photo
        posted = apply_channel(image, preset)
        assert posted.mode == "RGB"
        assert np.array_equal(np.asarray(posted), np.asarray(apply_channel(flatten(image),
                                                                           preset))), preset
        assert np.asarray(posted)[:, :40].mean() > 250, preset
    # every other channel: the stored colour, alpha dropped (what an RGB editor sees)
    assert np.array_equal(np.asarray(apply_channel(image, "as-is")), rgb)
    for channel in ("jpeg75", "blur", "crop"):
        assert np.array_equal(np.asarray(apply_channel(image, channel)),
                              np.asarray(apply_channel(opaque, channel))), channel


def test_photo_image_keeps_a_loaded_photos_alpha(tmp_path):
    from cloak.io import Photo, load_photo

    rgba = np.random.default_rng(1).integers(0, 256, (40, 48, 4), np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    image = photo_image(load_photo(tmp_path / "t.png"))
    assert image.mode == "RGBA" and np.array_equal(np.asarray(image), rgba)
    deep = Photo(rgb=np.full((1, 3, 3), 0.5, np.float32),
                 alpha=np.array([[0, 32896, 65535]], np.uint16), bit_depth=16)
    assert np.asarray(photo_image(deep))[0, :, 3].tolist() == [0, 128, 255]
    assert photo_image(Photo(rgb=np.zeros((2, 2, 3), np.float32))).mode == "RGB"


def test_verify_flattens_a_transparent_pair_for_the_posting_presets_only(model_dir,
                                                                         small_photo,
                                                                         tmp_path):
    """An original with transparency and its copy (noise everywhere, the alpha kept, as
    cloak's copies are): as it is, the stored colour of both is compared, hidden pixels
    included; after instagram, the two flattened onto white, where the hidden half is
    white in both."""
    base = np.asarray(Image.open(small_photo(tmp_path / "p.png", size=(128, 64)))
                      .convert("RGB"))
    noise = np.random.default_rng(2).integers(-8, 9, base.shape)
    noisy = np.clip(base.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    original, copy = transparent(base), transparent(noisy)
    channels = ("as-is", "instagram")
    v = verify_images(original, copy, channels, models=("taesd",))
    stored = verify_images(Image.fromarray(base), Image.fromarray(noisy), channels,
                           models=("taesd",))
    flat = verify_images(flatten(original), flatten(copy), ("instagram",), models=("taesd",))
    assert v.channels[0] == stored.channels[0] and v.psnr == stored.psnr
    assert v.channels[1].damage_db == flat.channels[0].damage_db
    assert v.channels[1].damage_db != stored.channels[1].damage_db


def pattern(size: tuple[int, int]) -> Image.Image:
    """A smooth random picture with no symmetry."""
    blobs = np.random.default_rng(3).integers(0, 256, (6, 9, 3), np.uint8)
    return Image.fromarray(blobs).resize(size, Image.BICUBIC)


def protected_like(image: Image.Image) -> Image.Image:
    """`image` with +-3/255 noise, standing in for its protected copy."""
    pixels = np.asarray(image, dtype=np.int16)
    noise = np.random.default_rng(4).integers(-3, 4, pixels.shape)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("size, turn, said", [
    ((96, 64), T.ROTATE_180, "turned 180 degrees: turn it back"),
    ((96, 64), T.FLIP_LEFT_RIGHT, "mirrored left to right: flip it back"),
    ((96, 64), T.FLIP_TOP_BOTTOM, "mirrored top to bottom: flip it back"),
    ((64, 64), T.ROTATE_90, "turned by a quarter: turn it back"),  # square: same size
    ((64, 64), T.TRANSPOSE, "turned by a quarter and mirrored: turn and flip it back"),
])
def test_a_copy_turned_or_mirrored_is_told_to_turn_it_back(size, turn, said):
    """Found before any model loads: no weights needed."""
    original = pattern(size)
    protected = protected_like(original)
    assert check_comparable(original, protected) > 35  # as it is, the two pair
    with pytest.raises(UnsupportedImageError, match="verify the copy alone") as caught:
        verify_images(original, protected.transpose(turn), ("as-is",), models=("taesd",))
    assert f"the copy looks like the original {said} and compare again" in str(caught.value)


def test_a_smaller_copy_turned_180_degrees_is_told_too():
    """Downloaded back at half size and turned: resized to pair (match_copy), then found
    turned."""
    original = pattern((192, 128))
    copy = protected_like(original).transpose(T.ROTATE_180).resize((96, 64), Image.LANCZOS)
    with pytest.raises(UnsupportedImageError, match="turned 180 degrees: turn it back"):
        verify_images(original, copy, ("as-is",), models=("taesd",))


def test_an_edited_copy_is_still_not_called_turned():
    """A copy that pairs no way round keeps the edit-or-another-photo error."""
    from PIL import ImageEnhance

    original = pattern((96, 64))
    brighter = ImageEnhance.Brightness(protected_like(original)).enhance(1.3)
    with pytest.raises(UnsupportedImageError, match="differ far more"):
        verify_images(original, brighter.transpose(T.ROTATE_180), ("as-is",),
                      models=("taesd",))


def test_a_transparent_original_resized_to_its_copy_keeps_the_colour_under_its_alpha():
    """Pillow resizes RGBA premultiplied, which would blacken the colour stored under
    transparent pixels; the original resized to a smaller copy (match_copy) keeps it, as
    the alpha-dropping channels compare it."""
    from cloak.comparable import match_copy

    rgb = np.asarray(pattern((192, 128)))
    original = transparent(rgb)
    copy = transparent(np.asarray(pattern((96, 64))))
    resized, note = match_copy(original, copy)
    assert resized.mode == "RGBA" and resized.size == (96, 64) and "resized" in note
    under = np.asarray(resized.convert("RGB"), dtype=np.int16)
    expected = np.asarray(Image.fromarray(rgb).resize((96, 64), Image.LANCZOS), dtype=np.int16)
    assert np.array_equal(under, expected)  # the hidden half too, not black
    assert np.asarray(resized.getchannel("A"))[:, :40].max() == 0


def test_an_rgb_image_with_a_colour_key_counts_as_transparent():
    from cloak.channels import rgb_or_rgba

    keyed = Image.new("RGB", (4, 4), (10, 20, 30))
    keyed.info["transparency"] = (10, 20, 30)
    assert rgb_or_rgba(keyed).mode == "RGBA"
    assert np.asarray(flatten(keyed)).min() == 255  # all of it the key: all white
    plain = Image.new("RGB", (4, 4))
    assert rgb_or_rgba(plain) is plain


def test_a_large_copy_turned_180_degrees_is_found_at_the_reduced_size(monkeypatch):
    """Above TURN_CHECK_SIDE both are scaled down before the turns are tried: no turn
    is tried on the full-size copy."""
    from cloak import comparable
    from cloak.comparable import TURN_CHECK_SIDE

    original = pattern((1200, 800))
    assert max(original.size) > TURN_CHECK_SIDE
    turned_sizes = []
    real_transpose = Image.Image.transpose

    def spying(image, method):
        turned_sizes.append(image.size)
        return real_transpose(image, method)

    monkeypatch.setattr(Image.Image, "transpose", spying)
    copy = protected_like(original).transpose(T.ROTATE_180)
    turned_sizes.clear()
    assert comparable.turned(original, copy) == ("turned 180 degrees", "turn it back")
    assert turned_sizes and max(max(size) for size in turned_sizes) <= TURN_CHECK_SIDE
    monkeypatch.undo()
    with pytest.raises(UnsupportedImageError, match="turned 180 degrees: turn it back"):
        check_comparable(original, protected_like(original).transpose(T.ROTATE_180))
    with pytest.raises(UnsupportedImageError, match="differ far more"):
        check_comparable(original, protected_like(original).transpose(T.ROTATE_180)
                         .point(lambda v: min(255, v + 60)))  # turned and edited


def hidden_black(size: tuple[int, int]) -> tuple[Image.Image, Image.Image]:
    """A transparent original whose hidden pixels store black (as many apps save them), and
    its protected-like copy with the alpha kept."""
    rgb = np.asarray(pattern(size)).copy()
    rgb[:, : size[0] // 2] = 0
    original = transparent(rgb)
    copy = transparent(np.asarray(protected_like(Image.fromarray(rgb))))
    return original, copy


@pytest.mark.parametrize("background, said", [
    ((255, 255, 255), "flattened onto white"), ((0, 0, 0), "flattened onto black")])
def test_a_transparent_original_pairs_with_a_platforms_flattened_copy(model_dir, background,
                                                                      said):
    """Before, the stored colour under the transparency was compared with the copy's
    white: "differ far more". Now the original is flattened as the copy was."""
    original, copy = hidden_black((128, 96))
    flat_copy = flatten(copy, background)
    if background == (255, 255, 255):  # what the old comparison made of this pair
        with pytest.raises(UnsupportedImageError, match="differ far more"):
            check_comparable(original.convert("RGB"), flat_copy)
    v = verify_images(original, flat_copy, ("as-is",), models=("taesd",))
    assert said in v.note and "the original is transparent and the copy is not" in v.note
    as_flat = verify_images(flatten(original, background), flat_copy, ("as-is",),
                            models=("taesd",))
    assert v.channels[0].damage_db == as_flat.channels[0].damage_db
    assert v.psnr == as_flat.psnr


@pytest.mark.parametrize("downloaded", ["cleared", "resized"])
def test_a_transparent_copy_whose_hidden_colour_was_cleared_pairs(model_dir, downloaded):
    """A copy still transparent, but with the colour under its transparency cleared (a
    WebP encoder does it by default, a PNG optimiser, a resize): every pixel that shows
    is the same, yet the pair was refused as "differ far more than protection changes a
    photo" (the hidden colours were compared). Both are compared flattened onto white
    now, as they show, and the note says why."""
    size = (160, 120)
    original = transparent(np.asarray(pattern(size)))
    cleared = np.asarray(transparent(np.asarray(protected_like(pattern(size))))).copy()
    cleared[cleared[..., 3] == 0, :3] = 0
    copy = Image.fromarray(cleared, "RGBA")
    if downloaded == "resized":
        copy = copy.resize((80, 60), Image.BOX)
    with pytest.raises(UnsupportedImageError, match="differ far more"):
        check_comparable(original, copy.resize(size, Image.BOX))  # what was compared
    v = verify_images(original, copy, ("as-is",), models=("taesd",))
    assert "not the colour stored under it" in v.note and "flattened onto white" in v.note
    if downloaded == "cleared":
        flat = verify_images(flatten(original), flatten(copy), ("as-is",), models=("taesd",))
        assert v.channels[0].damage_db == flat.channels[0].damage_db and v.psnr == flat.psnr
    kept = verify_images(original, transparent(np.asarray(protected_like(pattern(size)))),
                         ("as-is",), models=("taesd",))
    assert kept.note is None  # the colour kept: compared as before


def test_a_transparent_pair_and_an_opaque_pair_get_the_right_notes(model_dir):
    original, copy = hidden_black((96, 48))
    both = verify_images(original, copy, ("as-is", "instagram"), models=("taesd",))
    assert "the photos are transparent" in both.note
    assert "flattened onto white" in both.note
    # the note is about the posting presets: none measured, no note
    assert verify_images(original, copy, ("as-is",), models=("taesd",)).note is None
    opaque = verify_images(original.convert("RGB"), copy.convert("RGB"), ("as-is",),
                           models=("taesd",))
    assert opaque.note is None
    alpha = np.asarray(original).copy()
    alpha[..., 3] = 255  # an alpha band that hides nothing: no transparency to speak of
    solid = verify_images(Image.fromarray(alpha, "RGBA"), copy.convert("RGB"), ("as-is",),
                          models=("taesd",))
    assert solid.note is None


def test_an_original_whose_copy_dropped_its_transparency_pairs_that_way(model_dir):
    """An editor's convert("RGB") keeps the colour stored under the transparency: the
    original is compared with its alpha dropped, and the note says so."""
    original, copy = hidden_black((128, 64))
    v = verify_images(original, copy.convert("RGB"), ("as-is",), models=("taesd",))
    assert "flattened by dropping its transparency" in v.note
    plain = verify_images(original.convert("RGB"), copy.convert("RGB"), ("as-is",),
                          models=("taesd",))
    assert v.channels[0].damage_db == plain.channels[0].damage_db


def test_a_smaller_flattened_copy_of_a_transparent_original_pairs(model_dir):
    """Downloaded back at half size from a platform that flattened it onto white, then
    resized it: the original is flattened, then resized, in that order, so a clean copy
    made so is the original's own pixels (resized first, its transparent edges came out
    darker: 49 dB)."""
    original, copy = hidden_black((192, 128))
    small = flatten(copy).resize((96, 64), Image.LANCZOS)
    v = verify_images(original, small, ("as-is",), models=("taesd",))
    assert "resized to the copy's size" in v.note and "flattened onto white" in v.note
    clean = flatten(original).resize((96, 64), Image.LANCZOS)
    assert verify_images(original, clean, ("as-is",), models=("taesd",)).psnr > 60


def test_an_instagram_cropped_flattened_copy_of_a_transparent_original_pairs(model_dir):
    """Instagram crops a photo taller than 3:4 to its middle, flattens it, then resizes
    it: the original is cropped and flattened before it is resized, so a clean copy made
    so is the original's own pixels (resized first, its transparent edges came out
    darker and counted as damage)."""
    from cloak.channel_list import INSTAGRAM_ASPECT
    from cloak.channels import crop_to_aspect

    original, _ = hidden_black((96, 160))  # 0.6: taller than Instagram's 3:4
    clean = crop_to_aspect(flatten(original), *INSTAGRAM_ASPECT).resize((72, 96),
                                                                          Image.LANCZOS)
    v = verify_images(original, clean, ("as-is",), models=("taesd",))
    assert "cropped to its middle 96x128" in v.note and "resized to the copy's size" in v.note
    assert "flattened onto white" in v.note
    assert v.psnr > 60
    # a tall photo already 1080 wide: cropped, not resized; the note still says the crop
    unresized = crop_to_aspect(flatten(original), *INSTAGRAM_ASPECT)
    v = verify_images(original, unresized, ("as-is",), models=("taesd",))
    assert "cropped to its middle 96x128" in v.note and "flattened onto white" in v.note
    assert "resized" not in v.note


def test_an_opaque_original_s_transparent_copy_is_compared_by_its_colour_everywhere():
    """The posting presets flatten a transparent image onto white: a copy alone flattened
    would count the white as damage, so its alpha is dropped, as the other channels do."""
    from cloak.comparable import pair_transparency

    rgb = np.random.default_rng(2).integers(0, 256, (64, 96, 3), np.uint8)
    original = Image.fromarray(rgb)
    original_out, copy_out, note = pair_transparency(original, transparent(rgb))
    assert original_out is original and note is None
    assert copy_out.mode == "RGB" and np.array_equal(np.asarray(copy_out), rgb)
    for preset in SOCIAL_PRESETS:
        assert np.array_equal(np.asarray(apply_channel(copy_out, preset)),
                              np.asarray(apply_channel(original_out, preset))), preset
