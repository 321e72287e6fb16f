"""The visibility-aware budget map: flat < texture, faces >= non-faces, masks steer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PHOTOS, missing
from PIL import Image

from cloak import budget


def half_flat_half_texture(h=64, w=64) -> torch.Tensor:
    torch.manual_seed(0)
    x = torch.full((1, 3, h, w), 0.5)
    x[..., :, w // 2:] = torch.rand(1, 1, h, w // 2).expand(1, 3, h, w // 2)
    return x


class TestVisibilityMap:
    def test_flat_gets_less_than_texture(self):
        v = budget.visibility_map(half_flat_half_texture())
        flat, texture = v[..., 8:-8, 4:20].mean(), v[..., 8:-8, 44:60].mean()
        assert float(flat) < 0.5 * float(texture)
        # away from the edge: flat keeps the floor, texture (std ~0.29, over the 0.1
        # contrast reference) earns the full budget
        assert float(flat) == pytest.approx(budget.FLAT_FLOOR, abs=0.01)
        assert float(texture) == pytest.approx(1.0, abs=0.01)

    @pytest.mark.parametrize("level", [0, 128, 207, 230, 255])
    def test_every_flat_colour_gets_the_same_floor(self, level):
        """Computed in float32, E[y^2] - E[y]^2 left bright flat grays a std of up to
        1e-3 (a budget of 0.109 for medium's floor of 0.1 at 207, where 128 got 0.1)."""
        for colour in ((level,) * 3, (level, 0, 0)):
            x = torch.tensor(colour, dtype=torch.float32).div(255).view(1, 3, 1, 1)
            contrast = budget.local_contrast(x.expand(1, 3, 32, 32).contiguous())
            assert float(contrast.max()) < 1e-6, colour  # 1e-3 in float32
            v = budget.visibility_map(x.expand(1, 3, 32, 32).contiguous())
            assert float(v.max()) == pytest.approx(budget.FLAT_FLOOR, abs=1e-6), colour

    def test_map_is_smooth(self):
        v = budget.visibility_map(half_flat_half_texture())
        # No cell-like jumps: neighbouring pixels differ by a small fraction of the range.
        assert float((v[..., :, 1:] - v[..., :, :-1]).abs().max()) < 0.2


class TestPriorities:
    def test_face_region_gets_at_least_same_texture_budget(self):
        torch.manual_seed(1)
        x = torch.rand(1, 1, 96, 96).expand(1, 3, 96, 96).clone() * 0.2 + 0.4
        plain = budget.budget_map(x)
        with_face = budget.budget_map(x, face_boxes=[(36.0, 20.0, 24.0, 24.0)])
        face = (slice(None), slice(None), slice(24, 40), slice(40, 56))
        far = (slice(None), slice(None), slice(0, 8), slice(0, 8))
        # The face gets REGION_GAIN (1.5x, capped at the full budget) over the same texture.
        assert float(with_face[face].mean()) >= 1.3 * float(plain[face].mean())
        assert float(with_face[face].mean()) > float(with_face[far].mean())
        assert float(with_face.max()) <= 1.0  # a share of eps: the gain stays in the budget

    def test_user_mask_moves_the_budget(self):
        x = half_flat_half_texture()
        mask = torch.zeros(1, 1, 64, 64)
        mask[..., :32, :] = 1
        b = budget.budget_map(x, user_mask=mask)
        top, bottom = b[..., 4:28, 40:60].mean(), b[..., 36:60, 40:60].mean()
        assert float(top) > 2 * float(bottom)

    def test_a_mask_edge_leaves_no_budget_step(self):
        x = torch.rand(1, 1, 96, 96).expand(1, 3, 96, 96).clone()  # texture everywhere
        mask = torch.zeros(1, 1, 96, 96)
        mask[..., :48, :] = 1
        b = budget.budget_map(x, perceptual=False, user_mask=mask)
        rows = b[0, 0, :, 48]  # across the mask's edge
        assert float(rows[:10].mean()) > 2 * float(rows[-10:].mean())  # it still steers
        assert float((rows[1:] / rows[:-1]).min()) > 0.6  # but never by a cliff

    @pytest.mark.parametrize("kind", ["8-bit", "16-bit", "float"])
    def test_a_mask_reads_its_gray_levels_at_any_bit_depth(self, tmp_path, kind):
        """Half black, a quarter 50% gray, a quarter white, saved as 8-bit L, 16-bit
        (Pillow's own conversion to 8 bits would clip the gray to white) and float TIFF."""
        levels = np.zeros((64, 64), np.float32)
        levels[:, 32:48], levels[:, 48:] = 0.5, 1.0
        path = tmp_path / ("mask.tif" if kind == "float" else "mask.png")
        if kind == "8-bit":
            Image.fromarray(np.round(levels * 255).astype(np.uint8), "L").save(path)
        elif kind == "16-bit":
            Image.fromarray(np.round(levels * 65535).astype(np.uint16)).save(path)
            assert Image.open(path).mode.startswith("I")
        else:
            Image.fromarray(levels, "F").save(path)
        mask = budget.load_user_mask(path, 64, 64)[0, 0]
        assert float(mask[:, :30].max()) == 0
        assert float(mask[:, 34:46].mean()) == pytest.approx(0.5, abs=0.01)
        assert float(mask[:, 50:].min()) == pytest.approx(1.0, abs=0.01)

    def test_a_masks_see_through_pixels_count_as_black(self, tmp_path):
        """An editor layer: white painted on the left half, erased (white, alpha 0) on
        the right."""
        rgba = np.full((64, 64, 4), 255, np.uint8)
        rgba[:, 32:, 3] = 0
        Image.fromarray(rgba, "RGBA").save(tmp_path / "mask.png")
        mask = budget.load_user_mask(tmp_path / "mask.png", 64, 64)[0, 0]
        assert float(mask[:, :30].min()) == pytest.approx(1.0)
        assert float(mask[:, 34:].max()) == 0

    @pytest.mark.parametrize("mode", ["1", "L", "RGB"])
    def test_a_masks_colour_key_counts_as_black_too(self, tmp_path, mode):
        """A PNG optimiser may store on/off alpha as a colour key (tRNS): a mask whose
        white is the see-through colour has no white left and is refused, as a wholly
        erased one is; with the key on black, the white half reads white."""
        from cloak.errors import UnsupportedImageError

        gray = np.zeros((64, 64), np.uint8)
        gray[:, 32:] = 255
        image = Image.fromarray(gray, "L").convert(mode)
        white = 1 if mode == "1" else (255, 255, 255) if mode == "RGB" else 255
        image.save(tmp_path / "keyed_white.png", transparency=white)
        with pytest.raises(UnsupportedImageError, match="has no white"):
            budget.load_user_mask(tmp_path / "keyed_white.png", 64, 64)
        black = 0 if mode != "RGB" else (0, 0, 0)
        image.save(tmp_path / "keyed_black.png", transparency=black)
        mask = budget.load_user_mask(tmp_path / "keyed_black.png", 64, 64)[0, 0]
        assert float(mask[:, 34:].min()) == pytest.approx(1.0)
        assert float(mask[:, :30].max()) == 0

    @pytest.mark.parametrize("kind", ["black", "see-through"])
    def test_a_mask_without_white_is_refused(self, tmp_path, kind):
        """An all-black (or wholly erased) mask marks nothing to protect most and would
        leave the whole photo a third of its budget: refused in one line."""
        from cloak.errors import UnsupportedImageError

        rgba = np.zeros((64, 64, 4), np.uint8) if kind == "black" else np.full(
            (64, 64, 4), (255, 255, 255, 0), np.uint8)
        rgba[..., 3] = 255 if kind == "black" else 0
        Image.fromarray(rgba, "RGBA").save(tmp_path / "mask.png")
        with pytest.raises(UnsupportedImageError, match="has no white"):
            budget.load_user_mask(tmp_path / "mask.png", 64, 64)
        rgba[20:30, 20:30] = 255  # one white patch: a mask
        Image.fromarray(rgba, "RGBA").save(tmp_path / "mask.png")
        assert float(budget.load_user_mask(tmp_path / "mask.png", 64, 64).max()) == 1

    def test_a_mask_of_several_pictures_is_refused_and_a_tiff_masks_damage_named_so(
            self, tmp_path):
        """An animated GIF (or APNG) mask was read by its first frame alone, unsaid, where
        the same file as a photo is refused. A TIFF mask's damage was said as a photo's
        ("error: m.tif: the image data is truncated"), not as the mask's."""
        from cloak.errors import UnsupportedImageError

        frames = [Image.new("L", (64, 64), value) for value in (255, 0)]
        frames[0].save(tmp_path / "m.gif", save_all=True, append_images=frames[1:])
        frames[0].save(tmp_path / "m.png", save_all=True, append_images=frames[1:])
        for name, kind in (("m.gif", "GIF"), ("m.png", "PNG")):
            with pytest.raises(UnsupportedImageError, match=(
                    f"^can't read mask {tmp_path / name}: animated or multi-frame {kind} "
                    r"\(2 frames\)")):
                budget.load_user_mask(tmp_path / name, 64, 64)
        frames[0].save(tmp_path / "m.tif")
        whole = (tmp_path / "m.tif").read_bytes()
        (tmp_path / "m.tif").write_bytes(whole[: len(whole) // 2])
        with pytest.raises(UnsupportedImageError,
                           match=f"^can't read mask {tmp_path / 'm.tif'}: the image data"):
            budget.load_user_mask(tmp_path / "m.tif", 64, 64)

    def test_a_phones_two_picture_jpeg_mask_is_read_by_its_primary_picture(self, tmp_path):
        """An MPO (a phone's .jpg with a second, depth or preview picture) is one photo
        with an extra, not an animation: as a mask it is read, by its first picture, as
        the same file is read as a photo."""
        white_left = np.zeros((64, 64), np.uint8)
        white_left[:, :32] = 255
        second = Image.new("RGB", (64, 64), (255, 255, 255))
        Image.fromarray(white_left).convert("RGB").save(
            tmp_path / "mask.jpg", "MPO", save_all=True, append_images=[second])
        with Image.open(tmp_path / "mask.jpg") as img:
            assert img.format == "MPO" and img.n_frames == 2
        mask = budget.load_user_mask(tmp_path / "mask.jpg", 64, 64)
        assert float(mask[..., :, :24].min()) > 0.9 and float(mask[..., :, 40:].max()) < 0.1

    def test_a_mask_whose_white_vanishes_at_the_working_size_is_refused(self, tmp_path):
        """A speck of white on a big mask averages away at the size cloak works at: as
        good as black there. The batch's early check (8x8, readability only) takes it."""
        from cloak.errors import UnsupportedImageError

        speck = np.zeros((800, 800), np.uint8)
        speck[400:402, 400:402] = 255
        Image.fromarray(speck, "L").save(tmp_path / "mask.png")
        with pytest.raises(UnsupportedImageError, match="lasts at the 64x64 px cloak works at "
                                                        "for this photo .only lines or specks"):
            budget.load_user_mask(tmp_path / "mask.png", 64, 64)
        budget.load_user_mask(tmp_path / "mask.png", 8, 8, check_aspect=False)
        speck[300:500, 300:500] = 255  # a real region
        Image.fromarray(speck, "L").save(tmp_path / "mask.png")
        assert float(budget.load_user_mask(tmp_path / "mask.png", 64, 64).max()) == 1

    def test_uniform_when_not_perceptual(self):
        b = budget.budget_map(half_flat_half_texture(), perceptual=False)
        assert torch.equal(b, torch.ones_like(b))

    def test_person_mask_grows_face_to_body(self):
        m = budget.person_mask([(40.0, 10.0, 20.0, 20.0)], 128, 100)
        assert float(m[0, 0, 20, 50]) == 1  # face
        assert float(m[0, 0, 70, 50]) == 1  # upper body below it
        assert float(m[0, 0, 125, 2]) == 0  # far corner


def _texture_crop(size: int = 128) -> np.ndarray:
    """(size, size, 3) float32 crop of a real dev photo's textured centre."""
    photos = sorted(p for p in PHOTOS.glob("*.png"))
    if not photos:
        missing(f"no dev photos in {PHOTOS}")
    with Image.open(photos[0]) as im:
        im = im.convert("RGB")
        w, h = im.size
        crop = im.crop((w // 2 - 96, h // 2 - 96, w // 2 + 96, h // 2 + 96)).resize((size, size))
    return np.asarray(crop, dtype=np.float32) / 255


def _change(rgb: np.ndarray, config) -> np.ndarray:
    """|protected - original| per pixel and channel, (H, W, 3), real weights."""
    from cloak.pipeline import protect_array

    return np.abs(protect_array(rgb, config).rgb - rgb)


def _perturbation(rgb: np.ndarray, config) -> np.ndarray:
    """|protected - original| per pixel, (H, W), averaged over the channels."""
    return _change(rgb, config).mean(axis=2)


class TestWhereThePerturbationGoes:
    """End to end with real weights: the map decides where the attack's noise lands."""

    def test_flat_half_gets_less_noise_than_textured_half(self, tiny_config) -> None:
        rgb = _texture_crop()
        rgb[:, :64] = rgb[:, :64].mean(axis=(0, 1))  # left half: one flat colour
        change = _perturbation(rgb, tiny_config.replace(steps=3))
        flat, texture = change[8:-8, 8:52].mean(), change[8:-8, 76:120].mean()
        assert texture > 0
        assert flat < 0.5 * texture

    def test_at_full_size_too_the_flat_half_gets_less(self, tiny_config) -> None:
        """A photo larger than the attack size: the map and the noise are upsampled to
        full size, where the flat half must still get less (and no more than eps)."""
        rgb = _texture_crop(320)
        rgb[:, :160] = rgb[:, :160].mean(axis=(0, 1))
        per_channel = _change(rgb, tiny_config.replace(steps=3))
        change = per_channel.mean(axis=2)
        assert change.shape == (320, 320)
        flat, texture = change[16:-16, 16:128].mean(), change[16:-16, 192:304].mean()
        assert texture > 0 and flat < 0.5 * texture
        assert per_channel.max() <= tiny_config.eps + 1e-6  # every channel, not their mean

    def test_user_mask_moves_the_noise(self, tiny_config, tmp_path: Path) -> None:
        rgb = _texture_crop()
        mask = np.zeros((128, 128), np.uint8)
        mask[:64] = 255  # protect the top half most
        Image.fromarray(mask).save(tmp_path / "mask.png")
        config = tiny_config.replace(steps=3)
        plain = _perturbation(rgb, config)
        masked = _perturbation(rgb, config.replace(mask_path=str(tmp_path / "mask.png")))

        def top_over_bottom(change: np.ndarray) -> float:
            return float(change[8:56].mean() / change[72:120].mean())

        assert top_over_bottom(masked) > 1.5 * top_over_bottom(plain)


    def test_a_detected_face_gets_more_noise(self, model_dir) -> None:
        """Real YuNet on the example astronaut: with face priority the face carries more of
        the perturbation than without, and a corner outside head and body the same."""
        from cloak import ProtectConfig
        from cloak.io import load_photo
        from cloak.models.weights import resolve_face_detector

        example = Path(__file__).resolve().parent.parent / "examples" / "astronaut.jpg"
        rgb = load_photo(example).rgb
        u8 = np.round(rgb * 255).astype(np.uint8)
        (left, top, width, height), = budget.find_faces(
            u8, resolve_face_detector(allow_download=False))
        face = (slice(int(top), int(top + height)), slice(int(left), int(left + width)))
        corner = (slice(0, 48), slice(0, 48))  # top left: sky, outside head and body
        config = ProtectConfig(strength="medium", steps=2, models=("taesd",),
                               working_size=256, measure=False)
        with_faces = _perturbation(rgb, config.replace(faces=True))
        without = _perturbation(rgb, config.replace(faces=False))
        assert with_faces[face].mean() > 1.1 * without[face].mean()
        assert with_faces[corner].mean() == pytest.approx(without[corner].mean(), rel=0.05)


def test_a_higher_flat_floor_leaves_more_budget_in_flat_areas():
    x = half_flat_half_texture()
    low = budget.budget_map(x, flat_floor=0.1, contrast_ref=0.1)
    high = budget.budget_map(x, flat_floor=0.3, contrast_ref=0.05)
    flat = (..., slice(8, -8), slice(4, 20))
    assert float(low[flat].mean()) == pytest.approx(0.1, abs=0.02)
    assert float(high[flat].mean()) == pytest.approx(0.3, abs=0.02)


class TestUserMaskFile:
    def test_read_upright_and_resized(self, tmp_path):
        """A phone JPEG mask stored sideways with an EXIF turn is read as it is shown."""
        stored = Image.new("L", (40, 60), 0)  # stored 40 wide, 60 tall
        stored.paste(255, (0, 0, 40, 20))  # white along the stored top
        exif = Image.Exif()
        exif[0x0112] = 6  # shown turned 90 degrees clockwise: 60 wide, 40 tall
        stored.save(tmp_path / "mask.jpg", exif=exif, quality=100)
        mask = budget.load_user_mask(tmp_path / "mask.jpg", 20, 30)
        assert mask.shape == (1, 1, 20, 30)
        assert float(mask[..., :, -8:].mean()) > 0.9  # the stored top is now the right
        assert float(mask[..., :, :16].mean()) < 0.1

    def test_another_shape_is_refused_not_stretched(self, tmp_path):
        from cloak.errors import UnsupportedImageError

        Image.new("L", (60, 40), 255).save(tmp_path / "wide.png")
        with pytest.raises(UnsupportedImageError, match="not the shape of this photo"):
            budget.load_user_mask(tmp_path / "wide.png", 60, 40)  # a portrait photo
        assert budget.load_user_mask(tmp_path / "wide.png", 8, 8, check_aspect=False).shape \
            == (1, 1, 8, 8)
        assert budget.load_user_mask(tmp_path / "wide.png", 344, 512).shape == (1, 1, 344, 512)

    @pytest.mark.parametrize("pixels", [150_000_000, 10_000_000_000])
    def test_a_mask_over_the_pixel_limit_fails_in_one_line(self, tmp_path, monkeypatch, pixels):
        """Over Pillow's own limits (a warning from 89.5 MP, an error from 179 MP) a mask
        failed with a traceback; over cloak's it fails as a photo would."""
        import struct
        import zlib

        from cloak.errors import UnsupportedImageError

        def chunk(kind: bytes, data: bytes) -> bytes:
            return (struct.pack(">I", len(data)) + kind + data
                    + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

        side = int(pixels ** 0.5)
        path = tmp_path / "mask.png"  # a header that claims the pixels; no data needed
        path.write_bytes(b"\x89PNG\r\n\x1a\n"
                         + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                         + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
        monkeypatch.setenv("CLOAK_MAX_PIXELS", str(100_000_000))
        with pytest.raises(UnsupportedImageError, match="megapixels is over the 100 MP"):
            budget.load_user_mask(path, 64, 64)


class TestMaskFiles:
    """Mask files as editors and optimisers save them."""

    @pytest.mark.parametrize("kind", ["2-bit", "4-bit", "16-bit"])
    def test_a_low_or_high_bit_gray_masks_colour_key_counts_as_black(self, tmp_path, kind):
        """White made see-through by a colour key (a PNG optimiser's tRNS): Pillow scales
        2- and 4-bit samples but not their key, and the 16-bit key was not read, so the
        see-through half read as white and the mask was taken."""
        from cloak.errors import UnsupportedImageError

        path = tmp_path / "m.png"
        if kind == "16-bit":
            levels = np.zeros((64, 64), np.uint16)
            levels[:, 32:] = 65535
            Image.fromarray(levels).save(path, transparency=65535)
        else:
            bits = int(kind[0])
            levels = np.zeros((64, 64), np.uint8)
            levels[:, 32:] = 255
            Image.fromarray(levels, "L").save(path, bits=bits, transparency=2 ** bits - 1)
        with pytest.raises(UnsupportedImageError, match="has no white region"):
            budget.load_user_mask(path, 64, 64)

    def test_an_xmp_only_orientation_does_not_turn_a_mask(self, tmp_path):
        """A mask painted over a copy of the photo keeps the photo's XMP tiff:Orientation
        (no EXIF one): cloak shows and protects the photo as stored, so the mask is read
        as stored too. Pillow's exif_transpose turned it, so it was refused."""
        from cloak import io

        xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/'
               b'1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/'
               b'tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
        gray = np.zeros((48, 64), np.uint8)
        gray[:, :32] = 255
        Image.fromarray(gray, "L").save(tmp_path / "m.jpg", quality=95, xmp=xmp)
        Image.fromarray(np.dstack([gray] * 3)).save(tmp_path / "p.jpg", xmp=xmp)
        assert io.load_photo(tmp_path / "p.jpg").rgb.shape[:2] == (48, 64)
        mask = budget.load_user_mask(tmp_path / "m.jpg", 48, 64)[0, 0]
        assert float(mask[:, :28].min()) > 0.9 and float(mask[:, 36:].max()) < 0.1

    @pytest.mark.parametrize("tag", ["exif", "xmp"])
    def test_a_tiff_mask_is_turned_as_its_photo_is(self, tmp_path, tag):
        """A TIFF mask and its TIFF photo, both turned by an EXIF Orientation (Pillow
        turns a TIFF as it loads, and exif_transpose turned it back: refused as another
        shape) or by an XMP one alone (a photo is not turned by it, the mask was)."""
        from cloak import io

        gray = np.zeros((48, 64), np.uint8)
        gray[:, :32] = 255
        if tag == "exif":
            exif = Image.Exif()
            exif[0x0112] = 6
            options = {"exif": exif}
        else:
            options = {"tiffinfo": {700: (
                b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/'
                b'1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.'
                b'com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')}}
        Image.fromarray(gray, "L").save(tmp_path / "m.tif", **options)
        Image.fromarray(np.dstack([gray] * 3)).save(tmp_path / "p.tif", **options)
        photo = io.load_photo(tmp_path / "p.tif").rgb.mean(axis=2)
        mask = budget.load_user_mask(tmp_path / "m.tif", *photo.shape)[0, 0].numpy()
        assert photo.shape == ((64, 48) if tag == "exif" else (48, 64))
        assert np.abs(mask - photo).max() < 0.05

    def test_a_mask_drawn_for_a_slightly_other_shape_is_refused(self, tmp_path):
        """A mask drawn for another photo 3.4% off this one's shape was stretched over it
        (the tolerance was 5%); one saved at half the photo's size still fits."""
        from cloak.errors import UnsupportedImageError

        Image.new("L", (455, 568), 255).save(tmp_path / "half.png")  # for a 910x1137 photo
        assert budget.load_user_mask(tmp_path / "half.png", 64, 51,
                                     shape_of=(1137, 910)).shape == (1, 1, 64, 51)
        with pytest.raises(UnsupportedImageError,
                           match=r"is 455x568 \(aspect 0.801\), not the shape of this photo, "
                                 r"2566x3313 \(aspect 0.775\)"):
            budget.load_user_mask(tmp_path / "half.png", 64, 50, shape_of=(3313, 2566))
        Image.new("L", (24, 31), 255).save(tmp_path / "small.png")  # 1 px of rounding
        assert budget.load_user_mask(tmp_path / "small.png", 64, 48, shape_of=(3000, 2250)
                                     ).shape == (1, 1, 64, 48)

    def test_an_all_black_mask_names_no_working_size_when_read_ahead(self, tmp_path):
        """The CLI reads the mask once before any photo (no size to work at yet): the
        message named an 8x8 px working size."""
        from cloak.errors import UnsupportedImageError

        Image.new("L", (64, 48), 0).save(tmp_path / "black.png")
        with pytest.raises(UnsupportedImageError) as caught:
            budget.load_user_mask(tmp_path / "black.png", 8, 8, check_aspect=False)
        assert "has no white region:" in str(caught.value) and "8x8" not in str(caught.value)
