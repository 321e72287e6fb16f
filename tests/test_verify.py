"""verify: the verdicts it must give, channels, and the no-reference receipt."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cloak import ConfigError, ProtectConfig
from cloak.channel_list import SOCIAL_PRESETS
from cloak.channels import apply_channel, fit_for_posting
from cloak.pipeline import protect_array
from cloak.receipt import receipt_image
from cloak.verify import names_given, verdict_for, verify_images


@pytest.fixture
def photo(model_dir, small_photo, tmp_path) -> Image.Image:
    """A real photo 256x128: wide, so verify measures it at 512x256, half a square's
    pixels (each autoencoder round trip at 512x512 takes about 1.5 s on a 2-core AVX2
    CPU, and this file makes hundreds)."""
    return Image.open(small_photo(tmp_path / "p.png", size=(256, 128))).convert("RGB")


def with_noise(img: Image.Image, amplitude: int, seed: int) -> Image.Image:
    """`img` plus uniform integer noise in [-amplitude, amplitude] (of 255), clipped."""
    noise = np.random.default_rng(seed).integers(-amplitude, amplitude + 1,
                                                 (img.height, img.width, 3))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255)
                           .astype(np.uint8))


def _jpeg(img: Image.Image, quality: int) -> io.BytesIO:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return buffer


def protected_copy(img: Image.Image, config: ProtectConfig) -> Image.Image:
    rgb = protect_array(np.asarray(img, dtype=np.float32) / 255, config).rgb
    return Image.fromarray(np.round(rgb * 255).astype(np.uint8))


def damage_by_hand(model_name: str, clean: Image.Image, copy: Image.Image, size: int
                   ) -> float:
    """Damage computed here, not through cloak.metrics' damage functions (which verify
    itself uses): both photos resized to long side `size` px (the sides from
    metrics.long_side_dims, as verify sizes them; bicubic, antialiased), then
    PSNR(D(E(x)), x) - PSNR(D(E(x_adv)), x) = 10 log10(mse_adv / mse_clean)."""
    import torch
    import torch.nn.functional as F

    from cloak.device import autocast
    from cloak.metrics import long_side_dims
    from cloak.models import load_autoencoder

    model = load_autoencoder(model_name)
    x, xa = (torch.from_numpy(np.asarray(i, dtype=np.float32) / 255).permute(2, 0, 1)[None]
             for i in (clean, copy))
    dims = long_side_dims(clean.height, clean.width, size)
    xs, xas = (F.interpolate(i, size=dims, mode="bicubic", antialias=True,
                             align_corners=False).clamp(0, 1) for i in (x, xa))
    with torch.no_grad(), autocast(torch.device("cpu")):
        recs = [model.decode(model.encode(i)).float().clamp(0, 1) for i in (xs, xas)]
    mse_clean, mse_adv = (float(((r.double() - xs.double()) ** 2).mean()) for r in recs)
    return float(10 * np.log10(mse_adv / mse_clean))


@pytest.fixture(scope="module")
def example_at_medium(weights_dir) -> tuple[Image.Image, Image.Image]:
    """The example photo's top half (512x256, her face and shoulders: 512 px is the size
    verify and the receipt measure at), clean and protected at medium: one real medium
    run, shared by the tests that need one (half the whole photo's time: 112 s for the
    whole on a 2-core AVX2 CPU)."""
    example = Path(__file__).resolve().parent.parent / "examples" / "astronaut.jpg"
    clean = Image.open(example).convert("RGB").crop((0, 0, 512, 256))
    return clean, protected_copy(clean, ProtectConfig(
        strength="medium", measure=False, model_dir=str(weights_dir), allow_download=False))


@pytest.fixture(scope="module")
def example_clean_cache() -> dict:
    """verify's clean references of the example, shared by the tests that measure it
    (the cache key holds the pixels, so a test can't be handed another photo's)."""
    return {}


def test_arguments_of_the_wrong_kind_say_what_verify_takes(photo):
    """Paths for images, a channel it lacks, names as one string: a TypeError saying it
    takes images, a ConfigError naming the channels, and "taesd" read as one name (it was
    read letter by letter: "unknown model 't'")."""
    with pytest.raises(TypeError, match="takes two PIL images .* got str"):
        verify_images("me.jpg", photo)
    with pytest.raises(ConfigError, match="unknown channel 'tiktok'; choose from as-is, "):
        verify_images(photo, photo, channels=("as-is", "tiktok"), models=("taesd",))
    for models in (5, None, ["taesd", 5]):  # "'int' object is not iterable", or ignored
        with pytest.raises(TypeError, match="models must be names: strings"):
            verify_images(photo, photo, channels="as-is", models=models)
    with pytest.raises(TypeError, match="channels must be names"):
        verify_images(photo, photo, channels=None, models="taesd")
    assert names_given("taesd, TAEF2") == ("taesd", "taef2")
    assert names_given(n for n in ("TAESD", "taef1")) == ("taesd", "taef1")
    assert names_given({"taesd": 1}.keys()) == ("taesd",)
    assert names_given(["as-is", " Instagram "]) == ("as-is", "instagram")
    result = verify_images(photo, photo, channels="as-is", models="taesd", figures=False)
    assert [c.channel for c in result.channels] == ["as-is"]
    assert list(result.channels[0].damage_db) == ["taesd"]


def test_a_16_bit_gray_pair_is_measured_as_the_files_are(tmp_path, small_photo,
                                                          tiny_config):
    """Pillow's I;16 images went through its convert to RGB, which clips at 255: a 16-bit
    gray photo and cloak's own 16-bit copy of it were refused as "differ far more than
    protection changes a photo". They are read as cloak.io reads the files (verify's CLI)."""
    from cloak import io as cloak_io
    from cloak import protect_file
    from cloak.errors import UnsupportedImageError
    from cloak.verify import photo_image

    with Image.open(small_photo(tmp_path / "rgb.png", size=(96, 64))) as im:
        gray = np.asarray(im.convert("L")).astype(np.uint16) * 257
    src = tmp_path / "g16.png"
    Image.fromarray(gray).save(src)
    dst = tmp_path / "out" / "g16.png"
    protect_file(src, dst, tiny_config)
    opened = [Image.open(p) for p in (src, dst)]
    assert [im.mode for im in opened] == ["I;16", "I;16"]
    as_opened = verify_images(*opened, channels="as-is", models="taesd")
    as_read = verify_images(*[photo_image(cloak_io.load_photo(p)) for p in (src, dst)],
                            channels="as-is", models="taesd")
    assert as_opened.psnr == as_read.psnr > 30
    assert as_opened.channels[0].damage_db == as_read.channels[0].damage_db
    with pytest.raises(UnsupportedImageError, match="PIL mode F"):
        verify_images(opened[0].convert("F"), opened[1], channels="as-is", models="taesd")


def test_the_receipt_of_a_16_bit_gray_image_is_that_of_its_8_bit_levels(tmp_path,
                                                                        small_photo):
    """receipt_image (and receipt_per_model) given a PIL I;16 image read it as cloak.io
    does, not through Pillow's convert to RGB, which clips it at 255 (all white)."""
    from cloak.comparable import coarse_psnr

    with Image.open(small_photo(tmp_path / "rgb.png", size=(96, 64))) as im:
        gray8 = im.convert("L")
    gray16 = Image.fromarray(np.asarray(gray8).astype(np.uint16) * 257)
    assert gray16.mode == "I;16"
    assert receipt_image(gray16).score_db == receipt_image(gray8).score_db
    assert coarse_psnr(gray16, gray8) == coarse_psnr(gray8, gray8) > 60


def test_damage_alone_skips_the_full_size_figures_and_stops_when_asked(photo):
    """figures=False (the app's check after posting): the same damage, no full-size PSNR,
    SSIM or largest change; should_stop ends it between models with Cancelled."""
    import math

    from cloak import Cancelled

    noisy = with_noise(photo, 6, seed=1)
    full = verify_images(photo, noisy, ("instagram",), models=("taesd",))
    damage_only = verify_images(photo, noisy, ("instagram",), models=("taesd",),
                                figures=False)
    assert damage_only.channels == full.channels and full.psnr > 30
    assert math.isnan(damage_only.psnr) and math.isnan(damage_only.ssim)
    assert math.isnan(damage_only.max_change255) and full.max_change255 == pytest.approx(6, abs=1e-3)
    asked = []

    def after_one() -> bool:
        asked.append(1)
        return len(asked) > 1

    with pytest.raises(Cancelled):
        verify_images(photo, noisy, ("instagram",), models=("taesd", "taef2"),
                      should_stop=after_one)
    assert len(asked) == 2  # taesd measured, stopped before taef2


class TestVerdicts:
    def test_clean_photo_is_none(self, model_dir, photo):
        """A copy re-saved as a high-quality JPEG (q95 4:4:4), not protected: its pixels
        differ, the verdict is none, and no model reaches even "moderate" (taef2, the most
        sensitive to a re-save, measured 0.9-1.0 dB on this photo; the others under 0.6)."""
        buffer = io.BytesIO()
        photo.save(buffer, "JPEG", quality=95, subsampling=0)
        copy = Image.open(buffer).convert("RGB")
        assert not np.array_equal(np.asarray(copy), np.asarray(photo))
        v = verify_images(photo, copy, channels=("as-is", "instagram"))
        assert v.verdict == "none" and v.verdict_as_posted == "none"
        for channel in v.channels:
            assert all(abs(db) < 1.5 for db in channel.damage_db.values()), channel

    def test_medium_is_detected_as_is_and_after_instagram(self, model_dir,
                                                          example_at_medium,
                                                          example_clean_cache):
        """The example's top half at medium: a moderate or strong verdict as the photo is
        ("strong" here, 3.5 to 7.0 dB; the README's whole example prints "moderate"), and
        still some protection after the instagram preset (1.2 to 2.0 dB here; taesd 2.8 dB
        median after it on the 25 dev photos)."""
        clean, protected = example_at_medium
        v = verify_images(clean, protected, channels=("as-is", "instagram"),
                          clean_cache=example_clean_cache)
        assert v.max_change255 <= 8 + 1e-4
        assert v.to_dict()["verdict_as_is"] in ("moderate", "strong"), v.to_dict()
        instagram = v.channels[1]
        assert instagram.channel == "instagram"
        assert verdict_for(min(instagram.damage_db.values())) != "none", v.to_dict()

    def test_damage_matches_a_hand_computation_and_the_clean_cache_changes_nothing(self, photo):
        noisy = with_noise(photo, 8, seed=0)
        cache: dict = {}
        channels = ("as-is", "jpeg75")
        first = verify_images(photo, noisy, channels, models=("taesd",), clean_cache=cache)
        again = verify_images(photo, noisy, channels, models=("taesd",), clean_cache=cache)
        assert {key[0] for key in cache} == set(channels)
        assert first.to_dict()["channels"] == again.to_dict()["channels"]
        both = verify_images(photo, noisy, channels, models=("taesd", "taef2"),
                             clean_cache=cache)  # more models on the same cache
        assert both.channels[0].damage_db["taesd"] == first.channels[0].damage_db["taesd"]
        assert "taef2" in both.channels[0].damage_db
        ordered = verify_images(photo, noisy, ("jpeg75", "as-is"), models=("taesd",),
                                clean_cache=cache)
        assert ordered.as_posted.channel == "as-is"
        expected = damage_by_hand("taesd", photo, noisy, 512)
        assert expected > 0.1  # random +-8/255 noise: about 0.3 dB on taesd
        assert first.channels[0].damage_db["taesd"] == pytest.approx(expected, abs=1e-3)

    def test_channels_that_give_the_same_pixels_are_measured_once(self, photo,
                                                                  monkeypatch):
        """On a 256 px photo the grid and naive channels hand the models the photo as it
        is: one measurement serves all three, with each channel's own figures."""
        from cloak import metrics

        noisy = with_noise(photo, 8, seed=1)
        calls = {"damage": 0, "reference": 0}
        damage_and_shift, clean_reference = metrics.damage_and_shift, metrics.clean_reference

        def counted(name, fn):
            def run(*args):
                calls[name] += 1
                return fn(*args)
            return run

        monkeypatch.setattr(metrics, "damage_and_shift", counted("damage", damage_and_shift))
        monkeypatch.setattr(metrics, "clean_reference", counted("reference", clean_reference))
        together = verify_images(photo, noisy, ("as-is", "grid", "naive", "jpeg75"),
                                 models=("taesd",))
        assert calls == {"damage": 2, "reference": 2}  # as-is (= grid = naive), jpeg75
        alone = [verify_images(photo, noisy, (channel,), models=("taesd",)).channels[0]
                 for channel in ("as-is", "grid", "naive", "jpeg75")]
        assert [c.channel for c in together.channels] == ["as-is", "grid", "naive", "jpeg75"]
        assert [(c.damage_db, c.latent_shift) for c in together.channels] == [
            (c.damage_db, c.latent_shift) for c in alone]
        assert together.channels[3].damage_db != together.channels[0].damage_db

    def test_a_shared_clean_cache_never_mixes_up_two_originals(self, photo):
        """Two originals of one size through one cache dict: each is measured against its
        own clean reference (the cache key holds the pixels)."""
        other = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)  # same size, other pixels
        cache: dict = {}
        shared = [verify_images(o, with_noise(o, 8, seed=1), ("as-is",), models=("taesd",),
                                clean_cache=cache) for o in (photo, other)]
        alone = [verify_images(o, with_noise(o, 8, seed=1), ("as-is",), models=("taesd",))
                 for o in (photo, other)]
        assert [v.to_dict()["channels"] for v in shared] == [
            v.to_dict()["channels"] for v in alone]
        assert len(cache) == 2

    def test_no_model_is_a_clear_error(self, photo):
        with pytest.raises(ConfigError, match="no autoencoder"):
            verify_images(photo, photo, ("as-is",), models=())

    def test_no_channel_is_a_clear_error_and_a_channel_named_twice_is_measured_once(
            self, photo):
        for none in ((), ""):
            with pytest.raises(ConfigError, match="no channel to measure"):
                verify_images(photo, photo, none, models=("taesd",))
        twice = verify_images(photo, photo, "as-is,as-is", models=("taesd",), figures=False)
        assert [c.channel for c in twice.channels] == ["as-is"]

    def test_without_as_is_there_is_no_verdict_as_is(self, photo):
        """The photo as it is was not measured: its verdict is not another channel's."""
        v = verify_images(photo, photo, ("jpeg50",), models=("taesd",), figures=False)
        assert v.as_is is None and v.verdict_as_is is None
        assert v.to_dict()["verdict_as_is"] is None and v.verdict == "none"

    def test_a_damage_just_under_a_threshold_keeps_its_verdict(self, photo, monkeypatch):
        """Stored rounded down, as shown and judged: 2.9996 dB is 2.999, "moderate"."""
        from cloak import metrics

        monkeypatch.setattr(metrics, "damage_and_shift", lambda *a, **k: (2.9996, 0.1))
        v = verify_images(photo, photo, ("as-is",), models=("taesd",), figures=False)
        assert v.as_is.damage_db == {"taesd": 2.999} and v.verdict_as_is == "moderate"

    def test_thresholds(self):
        assert [verdict_for(d) for d in (5, 2, 0.7, 0.1)] == [
            "strong", "moderate", "weak", "none"]
        # At each threshold the higher verdict (>=), just under it the lower one.
        assert [verdict_for(d) for d in (3.0, 2.999, 1.5, 1.499, 0.5, 0.499)] == [
            "strong", "moderate", "moderate", "weak", "weak", "none"]

    def test_a_copy_of_another_shape_or_turned_is_a_clear_error(self, photo):
        from cloak import UnsupportedImageError

        wide = photo  # 256x128
        with pytest.raises(UnsupportedImageError, match="another shape"):
            verify_images(wide, wide.crop((0, 0, 128, 128)))
        with pytest.raises(UnsupportedImageError, match="turned by a quarter"):
            verify_images(wide, wide.transpose(Image.Transpose.ROTATE_90))

    def test_a_copy_larger_than_its_original_is_shrunk_not_called_strong(self, photo):
        """An unprotected photo and a smaller copy of it, given the other way round: the
        small one was enlarged to compare them, its blur measured as "strong"
        protection. A larger copy of the original's shape (a platform enlarges a photo
        under 320 px wide) is shrunk to the original's size instead, with a note; one of
        another shape is refused."""
        from cloak import UnsupportedImageError

        smaller = photo.resize((128, 64), Image.LANCZOS)
        for original, copy in ((smaller, photo), (photo, smaller)):
            result = verify_images(original, copy, channels=("as-is",), models=("taesd",))
            assert result.verdict_as_is in ("none", "weak"), result  # nothing protected
        result = verify_images(smaller, photo, channels=("as-is",), models=("taesd",))
        assert "the copy is 256x128, larger than the original (128x64): it was shrunk" in \
            result.note
        with pytest.raises(UnsupportedImageError, match="larger than the original and of "
                                                        "another shape"):
            verify_images(smaller, photo.crop((0, 0, 200, 128)), channels=("as-is",),
                          models=("taesd",))

    def test_a_copy_cropped_a_little_is_not_taken_for_a_resized_one(self, photo):
        """Cropped by 0.8% of its height, then halved: its shape is within 1% of the
        original's, but stretching the original over it would misalign them by 4 px at
        the edges, and the misalignment would count as damage."""
        from cloak import UnsupportedImageError

        wide = photo.resize((2048, 1024))
        copy = wide.crop((0, 4, 2048, 1020)).resize((1024, 508), Image.LANCZOS)
        with pytest.raises(UnsupportedImageError, match="another shape"):
            verify_images(wide, copy, channels=("as-is",), models=("taesd",))
        # along the long side too: 4 px off each end of the width, then halved
        copy = wide.crop((4, 0, 2044, 1024)).resize((1020, 512), Image.LANCZOS)
        with pytest.raises(UnsupportedImageError, match="another shape"):
            verify_images(wide, copy, channels=("as-is",), models=("taesd",))

    def test_a_copy_with_its_edges_trimmed_is_measured_against_the_same_crop(self, photo):
        """A copy cropped by a few px after protecting (a user trial: 4 px off the top and
        left) was taken for a resized one, misaligned, and refused as "differ far more".
        It is compared with the same crop of the original: a clean copy scores about 0,
        and the note says what was cut. A copy resized by a few px is still a resize."""
        cropped = photo.crop((3, 5, 256, 122))  # 3 px off the left, 5 top, 6 bottom
        for copy in (cropped, Image.open(_jpeg(cropped, 90))):
            result = verify_images(photo, copy, channels=("as-is",), models=("taesd",))
            assert "3 px on the left, 5 px at the top, 6 px at the bottom cut off" in \
                result.note
            assert abs(result.channels[0].damage_db["taesd"]) < 0.5
        resized = photo.resize((252, 126), Image.LANCZOS)
        result = verify_images(photo, resized, channels=("as-is",), models=("taesd",))
        assert "resized to the copy's size" in result.note and "cropped" not in result.note

    def test_is_resized_takes_rounded_sides_and_refuses_crops(self):
        from cloak.comparable import is_resized

        assert is_resized((4032, 3024), (1080, 810))  # exact
        assert is_resized((4000, 2252), (1080, 608))  # 608.04, rounded
        assert is_resized((1001, 667), (500, 334))  # an encoder's even side: 333.2 -> 334
        assert not is_resized((2048, 1024), (1020, 512))  # 8 px cropped off the width
        assert not is_resized((2048, 1024), (1024, 508))  # 8 px cropped off the height

    def test_an_instagram_copy_cropped_to_its_middle_is_measured(self, model_dir, photo):
        """A 2:3 photo posted to Instagram comes back cropped to 3:4 and resized: the
        original is cropped the same way, and a clean photo's copy scores about 0 on the
        posting's own loss only (no misalignment counted as damage)."""
        tall = photo.resize((400, 600))
        posted = apply_channel(tall, "instagram")
        assert posted.size == (400, 533)
        copy = posted.resize((300, 400), Image.LANCZOS)
        v = verify_images(tall, copy, channels=("as-is",), models=("taesd",))
        assert "cropped to its middle 400x533, as Instagram crops" in v.note
        assert abs(v.as_posted.damage_db["taesd"]) < 0.5

    def test_a_smaller_copy_downloaded_back_is_measured(self, model_dir, example_at_medium):
        clean, protected = example_at_medium
        full = verify_images(clean, protected, channels=("as-is",), models=("taesd",))
        half = protected.resize((clean.width // 2, clean.height // 2), Image.LANCZOS)
        v = verify_images(clean, half, channels=("as-is",), models=("taesd",))
        assert full.note is None
        assert "resized to the copy's size" in v.note and "256x128" in v.note
        assert v.as_posted.damage_db["taesd"] > 0.5  # the copy still carries protection
        assert v.as_posted.damage_db["taesd"] < full.as_posted.damage_db["taesd"]

    def test_an_edited_or_other_photo_is_not_called_damage(self, photo, small_photo,
                                                           tmp_path):
        from PIL import ImageEnhance

        from cloak import UnsupportedImageError

        brighter = ImageEnhance.Brightness(photo).enhance(1.2)
        other = Image.open(small_photo(tmp_path / "q.png", size=(256, 128), index=3))
        for copy in (brighter, other.convert("RGB")):
            with pytest.raises(UnsupportedImageError, match="differ far more"):
                verify_images(photo, copy, channels=("as-is",), models=("taesd",))


    def test_cloak_s_own_copy_of_a_small_photo_is_comparable(self, model_dir):
        """A 64 px avatar is not averaged down at 64 px: its copy at high (eps 12; made at
        512 px alone here, to save the 1024 px view's time), as a JPEG, measured 27 dB there
        and was refused as "another photo" (the app's posting check failed on it too). The
        bar follows the size; a brighter edit still fails."""
        import io as _io

        from PIL import ImageEnhance

        from cloak import ProtectConfig, UnsupportedImageError, protect
        from cloak.comparable import COMPARABLE_DB, check_comparable, comparable_db

        path = min((model_dir.parent / "photos" / "dev").glob("d08_*"))
        avatar = Image.open(path).convert("RGB")
        avatar.thumbnail((64, 64), Image.LANCZOS)
        out = protect(avatar, ProtectConfig(strength="high", steps=4, models=("taesd",),
                                            view_sizes=(512,), measure=False)).image
        buffer = _io.BytesIO()
        out.save(buffer, "JPEG", quality=95, subsampling=0)
        copy = Image.open(buffer).convert("RGB")
        assert check_comparable(avatar, copy) < COMPARABLE_DB  # refused before
        verify_images(avatar, copy, channels=("as-is",), models=("taesd",))
        for edit, factor in ((ImageEnhance.Brightness, 1.2), (ImageEnhance.Brightness, 1.1),
                             (ImageEnhance.Contrast, 1.2), (ImageEnhance.Contrast, 0.9)):
            # (x1.1 brighter, x1.2 and x0.9 contrast cleared the lower bar alone: 28.5, 26.9, 32.4)
            with pytest.raises(UnsupportedImageError, match="differ far more") as refused:
                verify_images(avatar, edit(avatar).enhance(factor),
                              channels=("as-is",), models=("taesd",))
            if factor != 1.2 or edit is ImageEnhance.Contrast:  # over the lower bar
                assert "its brightness or contrast changed" in str(refused.value)
        lifted = Image.eval(avatar, lambda v: min(255, v + 13))  # 25.9 dB: over the bar
        with pytest.raises(UnsupportedImageError, match="differ far more"):
            verify_images(avatar, lifted, channels=("as-is",), models=("taesd",))
        assert comparable_db((4000, 3000)) == COMPARABLE_DB == comparable_db((600, 400))

    def test_a_black_and_white_copy_is_measured_against_the_original_made_so(self, photo):
        """A black and white copy (by any of the common ways, stored gray, as RGB or as a
        JPEG) is compared with the original made black and white the way that matches it,
        said in the note: an unprotected one measures about nothing (the conversion is
        not taken for damage), a protected one keeps its brightness part."""
        from cloak.comparable import GRAY_WAYS, looks_gray, made_gray

        assert not looks_gray(photo)
        config = ProtectConfig(strength="fast", models=("taesd",), measure=False)
        protected = protected_copy(photo, config)
        for how, way in GRAY_WAYS:  # (3.2 to 3.5 dB here, 6.9 in colour)
            gray = made_gray(protected, way)
            assert looks_gray(gray)
            v = verify_images(photo, gray, ("as-is",), models=("taesd",))
            assert "the copy is black and white" in v.note and how in v.note, v.note
            assert v.as_is.damage_db["taesd"] >= 1.5, (how, v.as_is.damage_db)
        # the lightness, far from the lumas (compared with a luma, it is refused as
        # another photo): unprotected, it measures nothing once matched
        v = verify_images(photo, made_gray(photo, "lightness"), ("as-is",), models=("taesd",))
        assert abs(v.as_is.damage_db["taesd"]) < 0.1, v.as_is.damage_db
        luma = made_gray(protected, "601")
        for copy in (luma.convert("L"), Image.open(_jpeg(luma, 95))):
            v = verify_images(photo, copy, ("as-is",), models=("taesd",))
            assert "black and white" in v.note and v.as_is.damage_db["taesd"] >= 1.5


class TestChannels:
    @pytest.mark.parametrize("channel", ["as-is", *SOCIAL_PRESETS, "jpeg50", "down-up",
                                         "blur"])
    def test_keep_size_below_the_cap(self, channel):
        img = Image.new("RGB", (300, 200), (120, 80, 40))
        assert apply_channel(img, channel).size == (300, 200)

    def test_each_channel_is_its_processing(self):
        """On a textured photo under every cap, each posting preset is a 4:2:0 JPEG at its
        quality, and each clean-up is what its name says."""

        from PIL import ImageFilter

        img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 300, 3),
                                                                np.uint8))

        def jpeg(quality: int) -> Image.Image:
            buffer = io.BytesIO()
            img.save(buffer, "JPEG", quality=quality, subsampling=2)
            return Image.open(buffer).convert("RGB")

        expected = {
            "instagram": jpeg(80), "facebook": jpeg(85), "x": jpeg(85), "whatsapp": jpeg(75),
            "jpeg95": jpeg(95), "jpeg75": jpeg(75), "jpeg50": jpeg(50),
            "blur": img.filter(ImageFilter.GaussianBlur(radius=0.8)),
            "down-up": img.resize((150, 100), Image.BICUBIC).resize((300, 200),
                                                                     Image.BICUBIC)}
        for channel, want in expected.items():
            got = np.asarray(apply_channel(img, channel))
            assert np.array_equal(got, np.asarray(want)), channel
            assert not np.array_equal(got, np.asarray(img)), channel

    @pytest.mark.parametrize("size, posted", [
        ((3000, 2000), (1080, 720)),    # landscape: width 1080
        ((3024, 4032), (1080, 1440)),   # a phone's 3:4 portrait keeps its shape, width 1080
        ((2000, 3000), (1080, 1440)),   # 2:3 is taller than 3:4: cropped to 3:4
        ((4000, 1000), (1080, 565)),    # 4:1 is wider than 1.91:1: cropped to 1.91:1
        ((800, 1200), (800, 1067)),     # under the width cap: cropped, not scaled
    ])
    def test_instagram_caps_the_width_and_crops_to_its_aspect_range(self, size, posted):
        img = Image.new("RGB", size)
        assert apply_channel(img, "instagram").size == posted

    def test_instagram_crop_keeps_the_middle(self):
        pixels = np.zeros((300, 100, 3), np.uint8)
        pixels[:, :, 0] = np.arange(300)[:, None]   # each row tells its index
        posted = fit_for_posting(Image.fromarray(pixels), "instagram")
        rows = np.asarray(posted)[:, 0, 0]
        assert posted.size == (100, 133) and rows[0] == 83 and rows[-1] == 215

    def test_other_presets_cap_the_long_side(self):
        img = Image.new("RGB", (3024, 4032))
        assert apply_channel(img, "whatsapp").size == (1200, 1600)

    @pytest.mark.parametrize("size, cut", [((1024, 768), 8), ((300, 200), 2), ((40, 30), 1)])
    def test_crop_cuts_half_a_latent_cell_at_512_off_the_top_left(self, size, cut):
        pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), np.uint8)
        cropped = apply_channel(Image.fromarray(pixels), "crop")
        assert cropped.size == (size[0] - cut, size[1] - cut)
        assert np.array_equal(np.asarray(cropped), pixels[cut:, cut:])

    def test_crop_moves_the_grid_the_protection_was_made_on(self, model_dir,
                                                            example_at_medium,
                                                            example_clean_cache):
        """A 4 px crop (at 512) costs a medium photo much of its damage, not all of it."""
        clean, protected = example_at_medium
        v = verify_images(clean, protected, channels=("as-is", "crop"),
                          clean_cache=example_clean_cache)
        as_is, crop = v.channels[0].damage_db, v.channels[1].damage_db
        assert all(0.3 < crop[m] < 0.8 * as_is[m] for m in as_is), v.to_dict()
        assert v.worst.channel == "crop"


class TestReceipt:
    def test_tells_a_protected_photo_from_its_clean_original(self, model_dir,
                                                            example_at_medium):
        clean, protected = example_at_medium
        clean_receipt, protected_receipt = receipt_image(clean), receipt_image(protected)
        assert clean_receipt.model == "taesd" and clean_receipt.score_name == "hf_gap"
        assert not clean_receipt.protected, clean_receipt.to_dict()
        assert protected_receipt.protected, protected_receipt.to_dict()
        # After a simulated instagram upload the clean copy is still not flagged, and the
        # protected one still scores far above it. (On this half of the example it lands
        # at -0.02 dB, the clean one at -1.6, under the +0.36 threshold: a measured miss,
        # noted in the README, where the whole example lands at +0.33.)
        clean_posted = receipt_image(apply_channel(clean, "instagram"))
        protected_posted = receipt_image(apply_channel(protected, "instagram"))
        assert not clean_posted.protected
        assert protected_posted.score_db > clean_posted.score_db + 1.0

    def test_a_flat_colour_is_not_called_protected(self, model_dir):
        """A uniform image has no texture at all: whatever faint texture the decoder paints
        must not read as a huge high-frequency gap."""
        for colour in ((128, 128, 128), (30, 90, 200)):
            receipt = receipt_image(Image.new("RGB", (768, 512), colour))
            assert receipt.protected is False, receipt.to_dict()

    def test_a_photo_under_the_calibrated_size_gets_no_decision(self, model_dir):
        """Upscaled to 512 px to be scored, a small clean photo's smoothness alone raised
        its gap above the threshold ("protection detected" on 5 of 6 clean dev photos
        shrunk to 128-256 px): under RECEIPT_SMALLEST the receipt decides nothing."""
        from cloak.receipt import RECEIPT_SMALLEST

        example = Path(__file__).resolve().parent.parent / "examples" / "astronaut.jpg"
        with Image.open(example) as im:
            small = im.convert("RGB").resize((256, 256), Image.LANCZOS)
            large = im.convert("RGB").resize((RECEIPT_SMALLEST, RECEIPT_SMALLEST),
                                             Image.LANCZOS)
        receipt = receipt_image(small)
        assert receipt.score_db > receipt.threshold_db  # the false alarm it would give
        assert (receipt.decided, receipt.protected) == (False, None)
        assert receipt.to_dict()["protected"] is None
        assert receipt_image(large).protected is False


def test_the_grid_clean_up_is_an_editor_that_rounds_down():
    from cloak.channels import resize_rounding_down

    three_two = Image.new("RGB", (768, 512))
    assert apply_channel(three_two, "grid").size == (512, 336)  # cloak measures 512x344
    four_three = Image.new("RGB", (800, 600))
    assert apply_channel(four_three, "grid") is four_three  # 512x384 both ways
    assert resize_rounding_down(Image.new("RGB", (600, 604))).size == (504, 512)


def test_the_naive_clean_up_downscales_without_antialiasing():
    # Rows 1 and 2 of every 4 white: a 4x downscale with antialiasing averages them to
    # gray; one without blends only the two rows nearest each output row, rows 4i+1 and
    # 4i+2, and sees white.
    stripes = np.zeros((2048, 1536, 3), np.uint8)
    stripes[1::4] = stripes[2::4] = 255
    photo = Image.fromarray(stripes)
    naive = np.asarray(apply_channel(photo, "naive"), dtype=np.float32)
    assert naive.shape == (512, 384, 3)  # cloak's own 512 px grid
    averaged = np.asarray(photo.resize((384, 512), Image.LANCZOS), dtype=np.float32)
    assert abs(np.median(averaged) - 127.5) < 3
    assert np.median(naive) == 255
    small = Image.new("RGB", (500, 375))
    assert apply_channel(small, "naive") is small  # no downscale: the photo as it is


def iphone_photo(size: tuple[int, int]) -> tuple[Image.Image, bytes]:
    """The dev iPhone HEIC (Display P3) at `size`, as stored values, and its profile."""
    from conftest import PHOTOS, missing

    from cloak.io import load_photo

    heic = PHOTOS / "d19_exif-samples_IMG_5195.HEIC"
    if not heic.is_file():
        missing(f"{heic} missing")
    photo = load_photo(heic)
    return (Image.fromarray(np.round(photo.rgb * 255).astype(np.uint8)).resize(size),
            photo.icc_profile)


def test_a_display_p3_original_and_its_srgb_download_are_compared_in_srgb(model_dir,
                                                                         tmp_path):
    """An iPhone photo (Display P3) and the sRGB copy a platform sends back, with no
    protection at all: compared as stored values the colour shift reads as damage; in
    one colour space it reads as none, and the CLI says what it did."""
    import json

    from typer.testing import CliRunner

    import cli
    from cloak.colour import to_srgb
    from cloak.comparable import in_one_colour_space

    p3, icc = iphone_photo((496, 640))
    p3.save(tmp_path / "iphone.png", icc_profile=icc)
    to_srgb(p3, icc).save(tmp_path / "download.jpg", quality=95)

    raw = verify_images(p3, Image.open(tmp_path / "download.jpg").convert("RGB"),
                        ("as-is",), models=("taesd",))
    assert raw.channels[0].damage_db["taesd"] > 0.2  # the colour shift, counted as damage
    download = Image.open(tmp_path / "download.jpg").convert("RGB")
    original, copy, note = in_one_colour_space(p3, download, icc, None)
    assert "Display P3 and none" in note
    assert np.abs(np.asarray(original, np.int16) - np.asarray(p3, np.int16)).mean() > 1
    assert np.array_equal(np.asarray(copy), np.asarray(download))  # sRGB already

    result = CliRunner().invoke(cli.app, [
        "verify", str(tmp_path / "iphone.png"), str(tmp_path / "download.jpg"),
        "--models", "taesd", "--channels", "as-is", "--json", str(tmp_path / "v.json")])
    assert result.exit_code == 0, result.output
    assert "compared in sRGB" in result.stderr
    data = json.loads((tmp_path / "v.json").read_text())
    assert abs(data["channels"][0]["damage_db"]["taesd"]) < 0.1
    assert "compared in sRGB" in data["note"]
    # a copy keeping the original's profile (cloak's own copies) is compared as stored
    same = in_one_colour_space(p3, p3, icc, icc)
    assert same == (p3, p3, None)


def test_a_copy_saved_without_the_originals_profile_is_compared_as_stored(model_dir,
                                                                         tmp_path):
    """`cloak protect --no-icc` keeps the original's Display P3 values and leaves the
    profile out: converting only the original to sRGB would add the very colour shift
    the conversion is for. The two match best as stored, so they are compared so."""
    from cloak.comparable import in_one_colour_space

    p3, icc = iphone_photo((248, 320))
    original, copy, note = in_one_colour_space(p3, p3.copy(), icc, None)
    assert "compared as stored" in note
    assert np.array_equal(np.asarray(original), np.asarray(p3))
    assert np.array_equal(np.asarray(copy), np.asarray(p3))


def test_the_sdxl_and_flux_stand_ins_are_measured_at_1024_too(photo):
    """SDXL and FLUX edit at 1024 px, where a perturbation made at 512 keeps much less:
    with at_1024, verify also measures their stand-ins there (as the photo is), and only
    theirs, against a hand computation at 1024; its verdict is the weakest's there."""
    noisy = with_noise(photo, 8, seed=1)
    cache: dict = {}
    v = verify_images(photo, noisy, ("as-is",), models=("taesd", "taesdxl"), at_1024=True,
                      clean_cache=cache)
    assert set(v.damage_at_1024) == {"taesdxl"}
    expected = damage_by_hand("taesdxl", photo, noisy, 1024)
    assert v.damage_at_1024["taesdxl"] == pytest.approx(expected, abs=1e-3)
    # not the 512 figure under another name
    assert abs(v.damage_at_1024["taesdxl"] - v.channels[0].damage_db["taesdxl"]) > 1e-3
    assert v.verdict_at_1024 == verdict_for(expected)
    assert v.to_dict()["verdict_at_1024"] == v.verdict_at_1024
    plain = verify_images(photo, noisy, ("as-is",), models=("taesd", "taesdxl"),
                          clean_cache=cache)
    assert plain.damage_at_1024 == {} and plain.verdict_at_1024 is None


def gray_icc(gamma: float) -> bytes:
    """A minimal ICC v2 gray display profile (header, description, white point, one gamma
    tone curve): Pillow's lcms makes none, and Photoshop's "Dot Gain" ones are not here."""
    import struct

    def fixed(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    d50 = fixed(0.9642) + fixed(1.0) + fixed(0.8249)
    name = f"Gray gamma {gamma}".encode() + b"\0"
    tags = [(b"desc", b"desc" + bytes(4) + struct.pack(">I", len(name)) + name
             + bytes(8) + bytes(3) + bytes(67)),
            (b"wtpt", b"XYZ " + bytes(4) + d50),
            (b"kTRC", b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)),
            (b"cprt", b"text" + bytes(4) + b"none\0")]
    start = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        data += bytes(-(start + len(data)) % 4)
        table += sig + struct.pack(">II", start + len(data), len(body))
        data += body
    data += bytes(-len(data) % 4)
    header = (struct.pack(">I", start + len(data)) + bytes(4) + struct.pack(">I", 0x02100000)
              + b"mntrGRAYXYZ " + bytes(12) + b"acsp" + bytes(28) + d50 + bytes(48))
    return header + struct.pack(">I", len(tags)) + table + data


def test_a_gray_photo_s_gray_profile_is_applied_when_compared_in_srgb():
    """A grayscale original with a gray ICC profile (gamma 1.0 here) against a platform's
    sRGB copy: the original goes through its gray tone curve into sRGB (it was compared as
    stored, while the note said both were in sRGB)."""
    from cloak.colour import to_srgb
    from cloak.comparable import in_one_colour_space

    icc = gray_icc(1.0)
    original = Image.new("L", (64, 48), 128).convert("RGB")  # as a gray photo is read
    assert to_srgb(original, icc).getpixel((0, 0)) == (188, 188, 188)  # linear 0.5 in sRGB
    download = to_srgb(original, icc)
    converted, copy, note = in_one_colour_space(original, download, icc, None)
    assert converted.getpixel((0, 0)) == (188, 188, 188)
    assert np.array_equal(np.asarray(copy), np.asarray(download))  # sRGB already
    assert "compared in sRGB" in note


def test_a_cicp_tagged_display_p3_original_is_compared_in_srgb_too(model_dir, tmp_path):
    """A PNG whose Display P3 is said by a cICP chunk (no ICC profile), against its sRGB
    download: verify took the tag for no profile, compared them as stored, and called
    an unprotected copy "moderate" (2.3 dB). The tag's colours now get a profile
    (cicp_icc), which converts as Apple's own Display P3 profile does, to a level."""
    import json
    import struct
    import zlib

    from typer.testing import CliRunner

    import cli
    from cloak.cicp_icc import icc_for_cicp
    from cloak.colour import to_srgb

    p3, apple_icc = iphone_photo((496, 640))
    ours = icc_for_cicp(12, 13)
    gap = np.abs(np.asarray(to_srgb(p3, ours), np.int16)
                 - np.asarray(to_srgb(p3, apple_icc), np.int16))
    assert gap.max() <= 1 and np.abs(np.asarray(to_srgb(p3, ours), np.int16)
                                     - np.asarray(p3, np.int16)).max() > 20
    assert icc_for_cicp(1, 13) is None and icc_for_cicp(9, 16) is None  # sRGB; HDR

    p3.save(tmp_path / "tagged.png")
    raw = (tmp_path / "tagged.png").read_bytes()
    cicp = bytes([12, 13, 0, 1])
    chunk = struct.pack(">I", 4) + b"cICP" + cicp + struct.pack(">I", zlib.crc32(b"cICP" + cicp))
    (tmp_path / "tagged.png").write_bytes(raw[:33] + chunk + raw[33:])  # after IHDR
    to_srgb(p3, apple_icc).save(tmp_path / "download.jpg", quality=95)
    result = CliRunner().invoke(cli.app, [
        "verify", str(tmp_path / "tagged.png"), str(tmp_path / "download.jpg"),
        "--models", "taesd", "--channels", "as-is", "--json", str(tmp_path / "v.json")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "v.json").read_text())
    assert "Display P3 (from the photo's CICP tag)" in data["note"]
    assert "compared in sRGB" in data["note"]
    assert abs(data["channels"][0]["damage_db"]["taesd"]) < 0.2
    assert data["verdict"] == "none"


def test_verify_files_reads_both_photos_as_the_cli_does(model_dir, tmp_path):
    """The README's Python check, verify_images(Image.open(a), Image.open(b)), compares
    stored values: a Display P3 original against its unprotected sRGB download read as
    damage (the colour shift). cloak.verify_files reads both files as `cloak verify`
    does, profiles included, and finds none."""
    import cloak
    from cloak.colour import to_srgb

    p3, icc = iphone_photo((496, 640))
    p3.save(tmp_path / "iphone.png", icc_profile=icc)
    to_srgb(p3, icc).save(tmp_path / "download.jpg", quality=95)
    with Image.open(tmp_path / "iphone.png") as a, Image.open(tmp_path / "download.jpg") as b:
        raw = verify_images(a, b, ("as-is",), models=("taesd",))
    assert raw.channels[0].damage_db["taesd"] > 0.2
    checked = cloak.verify_files(tmp_path / "iphone.png", tmp_path / "download.jpg",
                                 channels=("as-is",), models=("taesd",)).verification
    assert abs(checked.channels[0].damage_db["taesd"]) < 0.1
    assert "compared in sRGB" in checked.note and checked.verdict == "none"
