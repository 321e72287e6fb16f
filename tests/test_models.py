"""The tiny autoencoders: architecture, weight lookup, layouts, verification, download."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from cloak.errors import ConfigError, ModelError
from cloak.models import fetch as F
from cloak.models import load_autoencoder
from cloak.models import weights as W
from cloak.models.registry import MODELS, get_spec


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each test gets its own empty user cache."""
    monkeypatch.setattr(W, "cache_dir", lambda: tmp_path / "cache")



@contextlib.contextmanager
def pipe_opened_by_a_writer_after(fifo: Path, seconds: float):
    """While in the block, open the FIFO `fifo` for writing (and close it) after
    `seconds`: code that wrongly opens it to read then reads an empty file and its test
    fails, where it would otherwise wait for a writer forever (the suite hung)."""
    done = threading.Event()

    def release() -> None:
        if not done.wait(seconds):
            with contextlib.suppress(OSError):  # no reader: nothing waits on it
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    writer = threading.Thread(target=release, daemon=True)
    writer.start()
    try:
        yield
    finally:
        done.set()
        writer.join()

class TestRealWeights:
    @pytest.mark.parametrize("name", list(MODELS))
    def test_loads_strictly_and_reconstructs(self, name, model_dir, small_photo, tmp_path):
        import numpy as np
        from PIL import Image

        from cloak import metrics

        ae = load_autoencoder(name)
        img = Image.open(small_photo(tmp_path / "p.png", size=(128, 128))).convert("RGB")
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)[None]
        with torch.no_grad():
            z = ae.encode(x)
        assert z.shape == (1, MODELS[name].latent_channels, 16, 16)
        # A real pretrained autoencoder reconstructs a photo far better than random weights.
        from cloak.models import TinyAutoencoder

        torch.manual_seed(0)
        untrained = TinyAutoencoder(MODELS[name].latent_channels, MODELS[name].use_pool)
        assert metrics.reconstruction_psnr(ae, x) > 17
        assert metrics.reconstruction_psnr(ae, x) > metrics.reconstruction_psnr(untrained, x) + 5

    def test_a_loaded_model_is_frozen_fp32_and_in_eval_mode(self, model_dir):
        model = load_autoencoder("taesd", model_dir)
        assert not model.training and all(not m.training for m in model.modules())
        assert all(p.dtype == torch.float32 and not p.requires_grad
                   for p in model.parameters())

    def test_unknown_model_is_a_clear_error(self):
        with pytest.raises(ConfigError, match="unknown model 'nope'"):
            get_spec("nope")


class TestLayouts:
    def test_diffusers_layout_loads_to_same_model(self, model_dir, tmp_path, monkeypatch):
        from safetensors.torch import save_file

        spec = get_spec("taesd")
        enc = W.read_state_dict(model_dir / "taesd_encoder.safetensors")
        dec = W.read_state_dict(model_dir / "taesd_decoder.safetensors")
        combined = {f"encoder.layers.{k}": v for k, v in enc.items()}
        # diffusers' decoder has no Clamp module in front: indices are one lower.
        for k, v in dec.items():
            index, rest = k.split(".", 1)
            combined[f"decoder.layers.{int(index) - 1}.{rest}"] = v
        # Known names and shapes of diffusers' AutoencoderTiny (its DecoderTiny clamps in
        # forward(), then layers.0 is the conv from the latent, layers.18 the conv to RGB):
        # the file built here has them, so the shift above is diffusers', not ours.
        assert combined["encoder.layers.0.weight"].shape == (64, 3, 3, 3)
        assert combined["decoder.layers.0.weight"].shape == (64, 4, 3, 3)
        assert combined["decoder.layers.18.weight"].shape == (3, 64, 3, 3)
        assert not any(k.startswith("decoder.layers.19.") for k in combined)
        folder = tmp_path / "hf" / "taesd"
        folder.mkdir(parents=True)
        save_file(combined, str(folder / "diffusion_pytorch_model.safetensors"))
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "hf"))
        path = W.resolve(spec, "decoder", allow_download=False)
        assert path.name == "diffusion_pytorch_model.safetensors"
        ours = W.load_part(spec, "decoder", path)
        flat = W.load_part(spec, "decoder", model_dir / "taesd_decoder.safetensors")
        z = torch.randn(1, 4, 4, 4)
        assert torch.equal(ours(z), flat(z))

    def test_a_diffusers_file_with_odd_keys_is_one_clear_error(self, tmp_path):
        from safetensors.torch import save_file

        path = tmp_path / "diffusion_pytorch_model.safetensors"
        save_file({"decoder.layers.x.weight": torch.zeros(1)}, str(path))
        with pytest.raises(ModelError, match="is not taesd decoder weights: unexpected key"):
            W.load_part(get_spec("taesd"), "decoder", path)

    def test_pth_layout_loads(self, model_dir):
        spec = get_spec("taef2")
        module = W.load_part(spec, "encoder", model_dir / "taef2_encoder.pth")
        assert module(torch.rand(1, 3, 32, 32)).shape == (1, 32, 4, 4)

    def test_wrong_weights_refused(self, model_dir):
        with pytest.raises(ModelError, match="is not taef1 encoder weights"):
            W.load_part(get_spec("taef1"), "encoder", model_dir / "taesd_encoder.safetensors")


class TestLookupAndVerification:
    def test_explicit_dir_beats_environment(self, model_dir, tmp_path, monkeypatch):
        mine = tmp_path / "mine"
        mine.mkdir()
        shutil.copy(model_dir / "taesd_encoder.safetensors", mine)
        found = W.resolve(get_spec("taesd"), "encoder", model_dir=mine, allow_download=False)
        assert found.parent == mine

    def test_environment_beats_the_cache_and_the_cache_is_used_last(self, model_dir,
                                                                    tmp_path, monkeypatch):
        """The search order: --model-dir, $CLOAK_MODEL_DIR, then the user cache."""
        env, cache = tmp_path / "env", tmp_path / "cache"
        for folder in (env, cache):
            folder.mkdir(exist_ok=True)
            shutil.copy(model_dir / "taesd_encoder.safetensors", folder)
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(env))
        found = W.resolve(get_spec("taesd"), "encoder", allow_download=False)
        assert found.parent == env
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "empty"))
        found = W.resolve(get_spec("taesd"), "encoder", allow_download=False)
        assert found.parent == cache

    def test_the_real_cache_is_the_users_cache_folder(self, monkeypatch, tmp_path):
        """platformdirs' per-user cache (XDG_CACHE_HOME on Linux), not the working folder."""
        import platformdirs

        monkeypatch.undo()  # the real cache_dir, not the private_cache fixture's
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert W.cache_dir() == Path(platformdirs.user_cache_dir("cloak")) / "models"
        if sys.platform.startswith("linux"):
            assert W.cache_dir() == tmp_path / "xdg" / "cloak" / "models"

    def test_a_broken_link_is_named_not_skipped(self, model_dir, tmp_path):
        """A link into a drive that is not mounted: one line naming it, not a silent
        fall-back to the cache or a download."""
        mine = tmp_path / "mine"
        mine.mkdir()
        (mine / "taesd_encoder.safetensors").symlink_to(tmp_path / "unmounted" / "x")
        with pytest.raises(ModelError, match="is a link to .*unmounted.*can't be found"):
            W.resolve(get_spec("taesd"), "encoder", model_dir=mine, allow_download=False)

    def test_a_model_dir_that_is_no_folder_is_refused(self, model_dir, tmp_path,
                                                      monkeypatch):
        """As the CLI's --model-dir: a mistyped folder fails, not falls back to
        $CLOAK_MODEL_DIR (where the weights are found here) with a warning."""
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(model_dir))
        (tmp_path / "a-file").write_text("")
        for wrong in (tmp_path / "missing", tmp_path / "a-file"):
            with pytest.raises(ModelError, match=f"model_dir {wrong} is not a folder"):
                W.resolve(get_spec("taesd"), "encoder", model_dir=wrong)

    def test_a_model_dir_without_a_file_says_where_it_came_from(self, model_dir, tmp_path,
                                                                monkeypatch, caplog):
        """--model-dir holding only the encoder: the decoder comes from
        $CLOAK_MODEL_DIR, and a warning says so (the folder given may be the wrong one)."""
        mine = tmp_path / "mine"
        mine.mkdir()
        shutil.copy(model_dir / "taesd_encoder.safetensors", mine)
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(model_dir))
        assert W.resolve(get_spec("taesd"), "encoder", model_dir=mine).parent == mine
        assert "not in" not in caplog.text
        found = W.resolve(get_spec("taesd"), "decoder", model_dir=mine)
        assert found.parent == model_dir
        assert f"taesd_decoder is not in {mine} (--model-dir); using {found}" in caplog.text

    def test_files_missing_from_a_model_dir_are_named_in_one_warning(
            self, model_dir, tmp_path, monkeypatch, caplog):
        """A --model-dir holding one of the files gave a warning for each of the others
        (seven, with all four models): loading several models names them all at once,
        before any is looked for further, by the folder each comes from, and those found
        nowhere as such (not "using them")."""
        from cloak.models import load_autoencoders

        mine, other = tmp_path / "mine", tmp_path / "other"
        mine.mkdir()
        other.mkdir()
        shutil.copy(model_dir / "taesd_encoder.safetensors", mine)
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(model_dir))
        load_autoencoders(["taesd", "taesdxl"], model_dir=mine)
        notes = [r.getMessage() for r in caplog.records if "(--model-dir)" in r.getMessage()]
        expected = (f"3 weight files are not in {mine} (--model-dir): using taesd_decoder, "
                    f"taesdxl_encoder, taesdxl_decoder from {model_dir}")
        assert notes == [expected]

        # two other folders, and files found nowhere with downloads off: the error
        # that follows names those; the warning does not say it uses them
        caplog.clear()
        shutil.copy(model_dir / "taesd_decoder.safetensors", other)
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(other))
        monkeypatch.setenv("CLOAK_OFFLINE", "1")
        with pytest.raises(ModelError, match="taesdxl_encoder, taesdxl_decoder"):
            load_autoencoders(["taesd", "taesdxl"], model_dir=mine)
        notes = [r.getMessage() for r in caplog.records if "(--model-dir)" in r.getMessage()]
        expected = (f"1 weight file is not in {mine} (--model-dir): using "
                    f"taesd_decoder from {other}")
        assert notes == [expected]  # the missing two once, on the error's line alone

        # nothing found elsewhere, downloads off: the error's one line says it all
        caplog.clear()
        (tmp_path / "alone").mkdir()
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "alone"))
        with pytest.raises(ModelError, match="taesdxl_encoder, taesdxl_decoder"):
            load_autoencoders(["taesdxl"], model_dir=tmp_path / "alone")
        assert not [r for r in caplog.records if "(--model-dir)" in r.getMessage()]

        # another file failing first (a damaged one) does not leave them unnamed
        damaged = tmp_path / "damaged"
        damaged.mkdir()
        data = bytearray((model_dir / "taesd_encoder.safetensors").read_bytes())
        data[-1] ^= 0xFF
        (damaged / "taesd_encoder.safetensors").write_bytes(bytes(data))
        shutil.copy(model_dir / "taesd_decoder.safetensors", damaged)
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(damaged))
        with pytest.raises(ModelError, match=r"also missing, with downloads off: "
                                             r"taesdxl_encoder, taesdxl_decoder$"):
            load_autoencoders(["taesd", "taesdxl"], model_dir=tmp_path / "alone")

    def test_sha_mismatch_is_refused(self, model_dir, tmp_path, monkeypatch):
        """A damaged copy under a pinned name is refused, though it still loads strictly
        and keeps its fingerprint: its last byte, flipped, is a weight's sign and
        exponent."""
        bad = tmp_path / "bad"
        bad.mkdir()
        data = bytearray((model_dir / "taesd_encoder.safetensors").read_bytes())
        data[-1] ^= 0xFF
        (bad / "taesd_encoder.safetensors").write_bytes(bytes(data))
        state = W.read_state_dict(bad / "taesd_encoder.safetensors", check_pin=False)
        assert W.identify(state, "encoder") == "taesd"  # the fingerprint alone would pass
        assert W.values_digest(state) != W.KNOWN_VALUES["taesd"]["encoder"]
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(bad))
        with pytest.raises(ModelError, match="sha256"):
            W.load_verified(get_spec("taesd"), "encoder", allow_download=False)

    def test_another_export_of_the_published_weights_is_used(self, model_dir, tmp_path,
                                                             monkeypatch, caplog):
        """The same weights saved again (fp32 safetensors, as other tools ship them) under
        the pinned name: other bytes, the published values; loaded, with a warning."""
        from safetensors.torch import save_file

        mine = tmp_path / "mine"
        mine.mkdir()
        state = W.read_state_dict(model_dir / "taesd_encoder.safetensors")
        save_file({k: v.float().contiguous() for k, v in state.items()},
                  str(mine / "taesd_encoder.safetensors"))
        assert W.sha256_of(mine / "taesd_encoder.safetensors") != W.KNOWN_SHA256[
            "taesd_encoder.safetensors"]
        module = W.load_verified(get_spec("taesd"), "encoder", model_dir=mine,
                                 allow_download=False)
        x = torch.rand(1, 3, 32, 32)
        reference = W.load_part(get_spec("taesd"), "encoder",
                                model_dir / "taesd_encoder.safetensors")
        assert torch.equal(module(x), reference(x))
        assert "another export" in caplog.text

    @pytest.mark.parametrize("name", ["taesdxl_encoder.safetensors", "taesdxl_encoder.pth"])
    def test_another_models_weights_are_refused_whatever_the_name(self, model_dir, tmp_path,
                                                                  name):
        """taesd's and taesdxl's weights have the same shapes, so a strict load takes
        either: their fingerprints tell them apart, under a pinned name or not."""
        mine = tmp_path / "mine"
        mine.mkdir()
        state = W.read_state_dict(model_dir / "taesd_encoder.safetensors")
        torch.save(state, mine / name) if name.endswith(".pth") else shutil.copy(
            model_dir / "taesd_encoder.safetensors", mine / name)
        with pytest.raises(ModelError, match="holds taesd's encoder weights .*not taesdxl's"):
            W.load_verified(get_spec("taesdxl"), "encoder", model_dir=mine,
                            allow_download=False)

    @pytest.mark.parametrize("name", ["taesd", "taesdxl", "taef1", "taef2"])
    def test_each_published_file_is_identified_as_itself(self, model_dir, name):
        for part in ("encoder", "decoder"):
            path = next(model_dir.glob(f"{name}_{part}.*"))
            state = W.normalise_keys(W.read_state_dict(path), part)
            assert W.identify(state, part) == name, path.name
            assert W.values_digest(state) == W.KNOWN_VALUES[name][part], path.name

    def test_a_damaged_copy_that_keeps_its_fingerprint_and_range_is_refused(
            self, model_dir, tmp_path):
        """Damage no range check sees (low bits of one weight, far from the layer the
        fingerprint samples): the bf16 values' digest differs, so the copy under the pinned
        name is refused, not taken for another export."""
        from safetensors.torch import save_file

        state = W.read_state_dict(model_dir / "taesd_encoder.safetensors")
        key = next(k for k in sorted(state) if k != W.FINGERPRINT_KEY["encoder"]
                   and state[k].numel() > 100)
        state[key].view(-1)[7] *= 1.5  # still a plausible weight
        mine = tmp_path / "mine"
        mine.mkdir()
        save_file({k: v.to(torch.bfloat16).contiguous() for k, v in state.items()},
                  str(mine / "taesd_encoder.safetensors"))
        assert W.identify(state, "encoder") == "taesd"
        with pytest.raises(ModelError, match="sha256"):
            W.load_verified(get_spec("taesd"), "encoder", model_dir=mine,
                            allow_download=False)

    def test_weights_saved_under_the_other_formats_name_load(self, model_dir, tmp_path):
        """A .pth saved as NAME.safetensors was called "damaged or cut off; get it again"
        (getting it again changed nothing); a safetensors file saved as NAME.pth was
        "refused by torch.load". The bytes say which it is; both loaders are safe."""
        import shutil

        import torch

        state = W.read_state_dict(model_dir / "taesd_encoder.safetensors")
        torch_saved = tmp_path / "a" / "taesd_encoder.safetensors"
        torch_saved.parent.mkdir()
        torch.save(state, torch_saved)
        renamed = tmp_path / "b" / "taesd_encoder.pth"
        renamed.parent.mkdir()
        shutil.copy(model_dir / "taesd_encoder.safetensors", renamed)
        W.load_verified(get_spec("taesd"), "encoder", model_dir=renamed.parent,
                        allow_download=False)
        # (under the pinned file's own name it must still be those bytes: the pin is
        # checked first, as for any file of that name)
        loaded = W.read_state_dict(torch_saved, check_pin=False)
        assert loaded.keys() == state.keys()
        assert all(torch.equal(loaded[k], state[k]) for k in state)

    def test_a_git_lfs_pointer_is_named_as_such(self, tmp_path):
        """A Hugging Face clone made without git-lfs holds ~130-byte text stubs."""
        stub = tmp_path / "taesd" / "diffusion_pytorch_model.safetensors"
        stub.parent.mkdir()
        stub.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64
                        + "\nsize 9800000\n")
        with pytest.raises(ModelError, match="a Git LFS pointer, not the weights"):
            W.read_state_dict(stub)

    def test_an_unreadable_weights_file_is_named_for_what_it_is(self, model_dir, tmp_path):
        """A web page saved under a weights name (GitHub's page for the file, not the raw
        file), a cut-off download and a pickle that carries code each get their own
        reason, not torch's."""
        import torch

        html = tmp_path / "page" / "taesd_encoder.pth"
        html.parent.mkdir()
        html.write_text("<!DOCTYPE html>\n<html><head><title>taesd</title></head></html>")
        with pytest.raises(ModelError, match="a web page, not weights"):
            W.read_state_dict(html)
        whole = tmp_path / "whole.pth"
        torch.save(W.read_state_dict(model_dir / "taesd_encoder.safetensors"), whole)
        assert W.read_state_dict(whole)  # the whole file loads
        cut = tmp_path / "cut" / "taesd_encoder.pth"
        cut.parent.mkdir()
        cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        with pytest.raises(ModelError, match="damaged or cut off"):
            W.read_state_dict(cut)
        code = tmp_path / "code" / "taesd_encoder.pth"
        code.parent.mkdir()
        torch.save({"hook": print}, code)
        with pytest.raises(ModelError, match=r"not a plain weights file \(refused"):
            W.read_state_dict(code)

        class RunsACommand:  # torch words this refusal otherwise ("unsupported GLOBAL
            def __reduce__(self):  # posix.system whose module posix is blocked"): it was
                return (os.system, ("true",))  # called "damaged or cut off"

        torch.save({"x": RunsACommand()}, code)
        with pytest.raises(ModelError, match=r"not a plain weights file \(refused"):
            W.read_state_dict(code)

    def test_what_is_no_weights_file_at_a_weights_name_is_named(self, model_dir, tmp_path):
        """A folder, a named pipe or a link to a device at a weight file's name was passed
        over unsaid ("weights ... not found"), a link to /dev/zero was "a link to
        /dev/zero, which can't be found"; a pipe read directly would wait for a writer,
        and a file of gigabytes was read whole before its sha256 refused it. Each is
        named for what it is, before it is read."""
        mine = tmp_path / "mine"
        mine.mkdir()
        name = mine / "taesd_encoder.safetensors"

        def found_instead() -> str:
            with pytest.raises(ModelError) as info:
                W.resolve(get_spec("taesd"), "encoder", model_dir=mine, allow_download=False)
            return str(info.value)

        advice = "not a weights file: move it away (cloak then looks in the next place"
        name.mkdir()
        assert found_instead().startswith(f"{name} is a folder, {advice}")
        name.rmdir()
        os.mkfifo(name)
        with pipe_opened_by_a_writer_after(name, 20):  # a read that waits fails, not hangs
            assert found_instead().startswith(f"{name} is a named pipe, {advice}")
            with pytest.raises(ModelError, match="is a named pipe, not a weights file"):
                W.read_state_dict(name)  # at once: not opened
        name.unlink()
        name.symlink_to("/dev/zero")
        assert found_instead().startswith(f"{name} (a link to /dev/zero) is a device, {advice}")
        name.unlink()
        with open(name, "wb") as huge:  # sparse: 65 MB on paper
            huge.truncate(65 << 20)
        with pytest.raises(ModelError, match=r"it is 65 MB, where the weights are a few MB"):
            W.read_state_dict(name)

    def test_weights_holding_values_that_are_not_numbers_are_refused(self, model_dir,
                                                                     tmp_path):
        """One NaN tensor in an unpinned encoder file made every gradient NaN: the copy
        came out unchanged ("max change 0/255"), was reported and recorded as protected,
        and measuring it crashed. It is refused as it loads."""
        for bad in (float("nan"), float("inf")):
            state = W.read_state_dict(model_dir / "taesd_encoder.safetensors")
            key = next(k for k in sorted(state) if state[k].numel() > 100)
            state[key] = state[key] * bad
            damaged = tmp_path / "taesd_encoder.pth"
            torch.save(state, damaged)
            with pytest.raises(ModelError, match=(
                    f"can't use weights {damaged}: {re.escape(key)} holds values that are "
                    r"not numbers \(NaN or infinite: a damaged file\)")):
                W.load_part(get_spec("taesd"), "encoder", damaged)

    def test_offline_without_weights_says_what_is_missing(self, tmp_path, monkeypatch):
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "empty"))
        with pytest.raises(ModelError) as info:
            W.resolve(get_spec("taesdxl"), "decoder", allow_download=False)
        message = str(info.value)
        assert "taesdxl_decoder" in message and "CLOAK_MODEL_DIR" in message

    def test_offline_every_missing_file_is_named_at_once(self, model_dir, tmp_path,
                                                         monkeypatch):
        """A user supplying the weights by hand learns every missing file from one run,
        not one file a run; files that are there are not listed."""
        from cloak.batch import preload_models
        from cloak.config import ProtectConfig

        mine = tmp_path / "mine"
        mine.mkdir()
        shutil.copy(model_dir / "taesd_encoder.safetensors", mine)
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(mine))
        monkeypatch.setenv("CLOAK_OFFLINE", "1")
        monkeypatch.setattr("cloak.models.loading._cache", {})
        with pytest.raises(ModelError) as info:
            preload_models(ProtectConfig(models=("taesd", "taef2"), faces=False))
        message = str(info.value)
        assert "3 files: taesd_decoder, taef2_encoder, taef2_decoder" in message
        assert "taesd_encoder" not in message.split("(looked in")[0]
        assert "downloads are off" in message and "CLOAK_MODEL_DIR" in message
        # one file missing keeps the one-file wording
        for name in ("taesd_decoder.safetensors", "taef2_encoder.pth"):
            shutil.copy(model_dir / name, mine)
        with pytest.raises(ModelError, match="weights for taef2 decoder not found"):
            preload_models(ProtectConfig(models=("taesd", "taef2"), faces=False))

    def test_the_library_names_every_missing_file_too(self, model_dir, tmp_path,
                                                      monkeypatch):
        """verify_images and protect reached from Python, offline: the same one message as
        the CLI's (they named the first missing file only)."""
        from PIL import Image

        from cloak import ProtectConfig, protect
        from cloak.verify import verify_images

        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "empty"))
        (tmp_path / "empty").mkdir()
        monkeypatch.setenv("CLOAK_OFFLINE", "1")
        monkeypatch.setattr("cloak.models.loading._cache", {})
        image = Image.new("RGB", (64, 64), "gray")
        named = "4 files: taesd_encoder, taesd_decoder, taef2_encoder, taef2_decoder"
        with pytest.raises(ModelError, match=named):
            verify_images(image, image, channels="as-is", models="taesd,taef2")
        with pytest.raises(ModelError, match=named):
            protect(image, ProtectConfig(models=("taesd", "taef2"), faces=False, steps=1))

    def test_a_file_that_fails_its_pin_is_not_parsed(self, model_dir, tmp_path,
                                                     monkeypatch):
        """Bytes that are not the pinned file's are refused before torch's unpickler
        (restricted as it is) ever reads them, where other exports are not taken."""
        copy = tmp_path / "taef2_encoder.pth"
        data = bytearray((model_dir / "taef2_encoder.pth").read_bytes())
        data[-100] ^= 0xFF
        copy.write_bytes(bytes(data))

        def not_to_be_called(*args, **kwargs):
            raise AssertionError("parsed")

        monkeypatch.setattr(torch, "load", not_to_be_called)
        with pytest.raises(W.PinMismatch):
            W.load_part(get_spec("taef2"), "encoder", copy)
        with pytest.raises(W.PinMismatch):
            W.read_state_dict(copy)

    def test_with_a_network_one_failed_file_is_named_alone(self, model_dir, tmp_path,
                                                           monkeypatch):
        """A mirror without one file: the others download, and the error names that one
        file, not every file (they were not tried, and would have come). With no network
        at all (a port that refuses), every missing file is named at once."""
        from cloak.batch import preload_models
        from cloak.config import ProtectConfig

        mirror = TestDownload._mirror(None, model_dir, tmp_path)
        (mirror / "taesd_decoder.pth").unlink()
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "nothing-here"))
        monkeypatch.delenv("CLOAK_OFFLINE", raising=False)
        monkeypatch.setenv("CLOAK_WEIGHTS_URL", mirror.as_uri())
        monkeypatch.setattr("cloak.models.loading._cache", {})
        with pytest.raises(ModelError) as info:
            preload_models(ProtectConfig(models=("taesd", "taef2"), faces=False))
        assert str(info.value).startswith("weights for taesd decoder not found")
        assert (tmp_path / "cache" / "taesd_encoder.pth").is_file()
        monkeypatch.setenv("CLOAK_WEIGHTS_URL", "http://127.0.0.1:9")  # refused
        with pytest.raises(ModelError) as info:
            preload_models(ProtectConfig(models=("taesd", "taef2"), faces=False))
        assert "3 files: taesd_decoder, taef2_encoder, taef2_decoder" in str(info.value)

    def test_a_damaged_unpinned_copy_loads_with_a_warning(self, model_dir, tmp_path,
                                                          caplog):
        """Damage that keeps the fingerprint, in a file with no pinned sha256 (the
        upstream .pth name): the values' digest tells it from the published weights, so
        it is used (as another release would be) but not in silence. The same weights
        exported whole are used without a word."""
        state = W.read_state_dict(model_dir / "taesd_encoder.safetensors")
        whole = tmp_path / "whole" / "taesd_encoder.pth"
        whole.parent.mkdir()
        torch.save(state, whole)
        key = next(k for k in sorted(state) if k != W.FINGERPRINT_KEY["encoder"]
                   and state[k].numel() > 100)
        state[key].view(-1)[7] *= 1.5
        damaged = tmp_path / "damaged" / "taesd_encoder.pth"
        damaged.parent.mkdir()
        torch.save(state, damaged)
        W._warned.clear()
        with caplog.at_level("WARNING", logger="cloak.models.weights"):
            W.load_part(get_spec("taesd"), "encoder", whole)
            assert not caplog.records
            W.load_part(get_spec("taesd"), "encoder", damaged)
        assert [r.getMessage() for r in caplog.records] == [(
            f"{damaged} loads as taesd encoder, but its weights are not the release cloak "
            "knows (another version, or a damaged copy): protection is made and measured "
            "against them as they are")]


class TestDownload:
    def _mirror(self, model_dir: Path, tmp_path: Path) -> Path:
        """A local 'upstream' with .pth files, as the public repository serves them."""
        mirror = tmp_path / "mirror"
        mirror.mkdir()
        for part in ("encoder", "decoder"):
            state = W.read_state_dict(model_dir / f"taesd_{part}.safetensors")
            torch.save(state, mirror / f"taesd_{part}.pth")
            shutil.copy(model_dir / f"taef2_{part}.pth", mirror)
        return mirror

    def test_download_from_file_url_is_verified_and_cached(self, model_dir, tmp_path,
                                                           monkeypatch, caplog):
        mirror = self._mirror(model_dir, tmp_path)
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "nothing-here"))
        monkeypatch.delenv("CLOAK_OFFLINE", raising=False)
        monkeypatch.setenv("CLOAK_WEIGHTS_URL", mirror.as_uri())
        seen = []
        path = W.resolve(get_spec("taef2"), "encoder",
                         progress=lambda name, done, total: seen.append(done))
        assert path == tmp_path / "cache" / "taef2_encoder.pth"
        assert W.sha256_of(path) == W.KNOWN_SHA256["taef2_encoder.pth"]  # pinned hash
        assert path.stat().st_mode & 0o777 == 0o644  # readable by others sharing the cache
        assert seen and seen[-1] == path.stat().st_size
        # Unpinned bytes (our re-export of taesd) are accepted by a strict load.
        assert W.resolve(get_spec("taesd"), "decoder").is_file()
        # Weights that load strictly, keep the model's fingerprint, but hold other values
        # (a newer upstream release, a tampered mirror) are not downloaded into the
        # cache: a server's file is trusted only as the release cloak knows. The same
        # file in a folder the user gives is theirs to use, with a warning.
        state = W.read_state_dict(mirror / "taesd_encoder.pth")
        state["0.weight"] = state["0.weight"] * 1.01
        torch.save(state, mirror / "taesd_encoder.pth")
        W._warned.clear()
        with pytest.raises(ModelError, match="holds other values than the release cloak "
                                             "knows.*--model-dir") as info:
            W.load_verified(get_spec("taesd"), "encoder")
        assert str(info.value).count("--model-dir") == 1, str(info.value)  # advised once
        assert not (tmp_path / "cache" / "taesd_encoder.pth").exists()
        assert not list((tmp_path / "cache").glob(".download-*"))
        mine = tmp_path / "mine"
        mine.mkdir()
        shutil.copy(mirror / "taesd_encoder.pth", mine)
        with caplog.at_level("WARNING", logger="cloak.models.weights"):
            W.load_verified(get_spec("taesd"), "encoder", model_dir=mine)
        warned = [r.getMessage() for r in caplog.records if "loads as" in r.getMessage()]
        assert len(warned) == 1 and warned[0].startswith(
            f"{mine / 'taesd_encoder.pth'} loads as taesd encoder"), warned
        # Second lookup comes from the cache, with the mirror gone.
        shutil.rmtree(mirror)
        assert W.resolve(get_spec("taef2"), "encoder") == path

    def test_a_mirror_serving_another_models_weights_is_refused(self, model_dir, tmp_path,
                                                                monkeypatch):
        """taesd's weights served as taesdxl's load strictly (same shapes): the download
        is refused by their fingerprint, and nothing is cached."""
        mirror = self._mirror(model_dir, tmp_path)
        shutil.copy(mirror / "taesd_encoder.pth", mirror / "taesdxl_encoder.pth")
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "nothing-here"))
        monkeypatch.delenv("CLOAK_OFFLINE", raising=False)
        monkeypatch.setenv("CLOAK_WEIGHTS_URL", mirror.as_uri())
        with pytest.raises(ModelError, match="download from .*taesdxl_encoder.pth failed: "
                                             "the file it sent is not these weights"):
            W.resolve(get_spec("taesdxl"), "encoder")
        assert not (tmp_path / "cache" / "taesdxl_encoder.pth").exists()

    def test_cloak_offline_stops_a_download_that_would_work(self, model_dir, tmp_path,
                                                           monkeypatch):
        """CLOAK_OFFLINE=1 with a working mirror: nothing is fetched, and the message says
        downloads are off (not that a download failed)."""
        mirror = self._mirror(model_dir, tmp_path)
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "nothing-here"))
        monkeypatch.setenv("CLOAK_WEIGHTS_URL", mirror.as_uri())
        for value in ("1", "yes"):
            monkeypatch.setenv("CLOAK_OFFLINE", value)
            with pytest.raises(ModelError, match="downloads are off"):
                W.resolve(get_spec("taef2"), "encoder")
            assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
        monkeypatch.setenv("CLOAK_OFFLINE", "0")  # and off means on again
        assert W.resolve(get_spec("taef2"), "encoder").is_file()

    def test_corrupt_download_is_refused_and_not_cached(self, model_dir, tmp_path,
                                                        monkeypatch):
        mirror = self._mirror(model_dir, tmp_path)
        (mirror / "taef2_encoder.pth").write_bytes(b"not weights")
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "nothing-here"))
        monkeypatch.delenv("CLOAK_OFFLINE", raising=False)
        monkeypatch.setenv("CLOAK_WEIGHTS_URL", mirror.as_uri())
        with pytest.raises(ModelError, match="download from .* failed: the file it sent "
                                             "does not match its pinned sha256.*--model-dir"):
            W.resolve(get_spec("taef2"), "encoder")
        # Unpinned: a proxy's HTML page fails the strict load, with the same advice, and
        # names no temp file.
        (mirror / "taesd_encoder.pth").write_bytes(b"<html>sign in to the wifi</html>")
        with pytest.raises(ModelError, match="the file it sent is not these weights.*"
                                             "--model-dir") as info:
            W.resolve(get_spec("taesd"), "encoder")
        assert ".download-" not in str(info.value)
        assert not list((tmp_path / "cache").glob("*"))

    def test_a_download_cut_short_is_refused(self, model_dir, tmp_path, monkeypatch):
        """The server promised more bytes than it sent (a dropped connection)."""
        import http.server
        import threading

        body = (model_dir / "taef2_encoder.pth").read_bytes()

        class CutShort(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:1000])

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CutShort)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "nothing-here"))
            monkeypatch.delenv("CLOAK_OFFLINE", raising=False)
            monkeypatch.setenv("CLOAK_WEIGHTS_URL", f"http://127.0.0.1:{server.server_port}")
            with pytest.raises(ModelError, match=f"ended early \\(1000 of {len(body)} bytes"):
                W.resolve(get_spec("taef2"), "encoder")
        finally:
            server.shutdown()
        assert not list((tmp_path / "cache").glob("*"))

    def test_an_empty_mirror_variable_means_upstream(self, monkeypatch):
        monkeypatch.setenv("CLOAK_WEIGHTS_URL", "")
        assert W.download_url(get_spec("taesd"), "encoder") == (
            f"{W.UPSTREAM_URL}/taesd_encoder.pth")

    @pytest.mark.parametrize("mirror", ["unreachable", "mirror.example.org/taesd"])
    def test_a_failed_download_gives_one_clear_line(self, tmp_path, monkeypatch, mirror):
        """An address that can't be reached, or one with no scheme at all."""
        if mirror == "unreachable":
            mirror = (tmp_path / "no-such-mirror").as_uri()
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "nothing-here"))
        monkeypatch.delenv("CLOAK_OFFLINE", raising=False)
        monkeypatch.setenv("CLOAK_WEIGHTS_URL", mirror)
        with pytest.raises(ModelError, match="download from .* failed") as info:
            W.resolve(get_spec("taesd"), "encoder")
        assert "\n" not in str(info.value)
        assert "<urlopen" not in str(info.value)  # urllib's wrapper, not words

    def test_network_failures_are_said_in_words(self):
        import socket
        import urllib.error

        no_dns = urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name "
                                                          "resolution"))
        assert F.network_reason(no_dns) == ("no network, or an unknown host: Temporary "
                                            "failure in name resolution")
        refused = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
        assert F.network_reason(refused) == "Connection refused"
        gone = urllib.error.HTTPError("http://x/a.pth", 404, "Not Found", {}, None)
        assert F.network_reason(gone) == "HTTP 404 Not Found"
        assert F.network_reason(TimeoutError("timed out")) == "timed out"

    def test_unwritable_cache_gives_one_clear_line(self, tmp_path, monkeypatch):
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        monkeypatch.setattr(W, "cache_dir", lambda: blocker / "cache")
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "nothing-here"))
        monkeypatch.delenv("CLOAK_OFFLINE", raising=False)
        with pytest.raises(ModelError, match="cache folder .* can't be made: .* is a file, "
                                             "not a folder"):
            W.resolve(get_spec("taesd"), "encoder")


def test_in_process_cache_follows_cloak_model_dir(model_dir, tmp_path, monkeypatch):
    """A model loaded from $CLOAK_MODEL_DIR is not handed out after it points elsewhere."""
    monkeypatch.setattr("cloak.models.loading._cache", {})
    assert load_autoencoder("taesd") is load_autoencoder("taesd")
    monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("CLOAK_OFFLINE", "1")
    with pytest.raises(ModelError, match="weights for taesd"):
        load_autoencoder("taesd")


class TestFaceDetector:
    """YuNet steers the budget to faces; real installs fetch it like the weights."""

    @pytest.fixture
    def no_local_copy(self, tmp_path, monkeypatch):
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "nothing-here"))
        monkeypatch.delenv("CLOAK_OFFLINE", raising=False)
        monkeypatch.setattr(W, "cache_dir", lambda: tmp_path / "cache")
        monkeypatch.setattr(W, "_face_detector_failed", set())
        monkeypatch.setattr(W, "_warned", set())

    def test_download_is_checked_and_cached(self, model_dir, tmp_path, no_local_copy,
                                            monkeypatch):
        mirror = tmp_path / "mirror"
        mirror.mkdir()
        shutil.copy(model_dir / W.FACE_DETECTOR, mirror)
        monkeypatch.setenv("CLOAK_WEIGHTS_URL", mirror.as_uri())
        seen = []
        path = W.resolve_face_detector(progress=lambda name, done, total: seen.append(name))
        assert path == tmp_path / "cache" / W.FACE_DETECTOR
        assert W.sha256_of(path) == W.KNOWN_SHA256[W.FACE_DETECTOR] and seen
        shutil.rmtree(mirror)
        assert W.resolve_face_detector() == path  # from the cache now

    def test_a_bad_or_missing_download_turns_faces_off_with_a_warning(
            self, tmp_path, no_local_copy, monkeypatch, caplog):
        mirror = tmp_path / "mirror"
        mirror.mkdir()
        (mirror / W.FACE_DETECTOR).write_bytes(b"not a detector")
        monkeypatch.setenv("CLOAK_WEIGHTS_URL", mirror.as_uri())
        assert W.resolve_face_detector() is None
        assert "face priority is off" in caplog.text
        assert not list((tmp_path / "cache").glob("*"))  # nothing half-written is kept
        monkeypatch.setenv("CLOAK_WEIGHTS_URL", (tmp_path / "gone").as_uri())
        assert W.resolve_face_detector() is None

    def test_offline_or_no_downloads_finds_none(self, tmp_path, no_local_copy, monkeypatch):
        monkeypatch.setenv("CLOAK_WEIGHTS_URL", (tmp_path / "never-read").as_uri())
        assert W.resolve_face_detector(allow_download=False) is None
        monkeypatch.setenv("CLOAK_OFFLINE", "1")
        assert W.resolve_face_detector() is None
        for off in ("1", "true", "yes", "on", "offline"):
            monkeypatch.setenv("CLOAK_OFFLINE", off)
            assert F.downloads_off(), off
        for on in ("", "0", "false", "no", "off"):
            monkeypatch.setenv("CLOAK_OFFLINE", on)
            assert not F.downloads_off(), on

    def test_a_local_copy_with_other_bytes_is_skipped_with_one_warning(
            self, model_dir, tmp_path, monkeypatch, caplog):
        monkeypatch.setattr(W, "_warned", set())
        folder = tmp_path / "models"
        folder.mkdir()
        (folder / W.FACE_DETECTOR).write_bytes(b"something else")
        # The next folder (CLOAK_MODEL_DIR) has the published file: that one is used.
        assert W.resolve_face_detector(folder, allow_download=False) == \
            model_dir / W.FACE_DETECTOR
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "nothing-here"))
        monkeypatch.setattr(W, "cache_dir", lambda: tmp_path / "cache")
        assert W.resolve_face_detector(folder, allow_download=False) is None
        assert W.resolve_face_detector(folder, allow_download=False) is None
        assert caplog.text.count("sha256 differs") == 1  # once per process, not per photo

    def test_the_real_detector_finds_the_astronaut(self, model_dir):
        from cloak.budget import find_faces
        from cloak.io import load_photo

        example = Path(__file__).resolve().parent.parent / "examples" / "astronaut.jpg"
        rgb = np.round(load_photo(example).rgb * 255).astype(np.uint8)
        boxes = find_faces(rgb, W.resolve_face_detector(allow_download=False))
        assert len(boxes) == 1
        left, _, width, _ = boxes[0]
        assert 0.25 < (left + width / 2) / rgb.shape[1] < 0.75
        assert width > 0.1 * rgb.shape[1]

    def test_a_detector_swapped_after_its_check_is_not_parsed(self, model_dir, tmp_path,
                                                              caplog):
        from cloak.budget import find_faces
        from cloak.io import load_photo

        example = Path(__file__).resolve().parent.parent / "examples" / "astronaut.jpg"
        rgb = np.round(load_photo(example).rgb * 255).astype(np.uint8)
        checked = tmp_path / W.FACE_DETECTOR
        checked.write_bytes((model_dir / W.FACE_DETECTOR).read_bytes())
        assert len(find_faces(rgb, checked)) == 1
        data = bytearray(checked.read_bytes())
        data[-100] ^= 0xFF  # another file under the checked name
        checked.write_bytes(bytes(data))
        assert find_faces(rgb, checked) is None
        assert "sha256 differs" in caplog.text


def test_a_file_swapped_after_its_check_is_not_loaded(model_dir, tmp_path, monkeypatch):
    """The cache's copy is checked (verify_file) before it is loaded; what is loaded is
    checked again, on its own bytes: a file replaced between the two (taesdxl's weights
    have taesd's shapes) is refused, not loaded as taesd. (A folder the user chose is
    checked only on the bytes loaded.)"""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "nothing-here"))
    for part in ("encoder", "decoder"):
        torch.save(W.read_state_dict(model_dir / f"taesd_{part}.safetensors"),
                   cache / f"taesd_{part}.pth")
    real_verify = W.verify_file
    checked = []

    def verify_then_swap(path):
        checked.append(path)
        result = real_verify(path)
        torch.save(W.read_state_dict(model_dir / path.name.replace("taesd_", "taesdxl_")
                                     .replace(".pth", ".safetensors")), path)
        return result

    monkeypatch.setattr(W, "verify_file", verify_then_swap)
    with pytest.raises(ModelError, match="holds taesdxl's encoder weights"):
        load_autoencoder("taesd", allow_download=False)
    assert checked == [cache / "taesd_encoder.pth"]


def test_a_killed_downloads_temp_file_is_swept_and_a_live_one_kept(model_dir, tmp_path,
                                                                   monkeypatch):
    import os
    import time

    cache = tmp_path / "cache"
    cache.mkdir()
    stale, live = cache / ".download-old.pth", cache / ".download-new.pth"
    for path in (stale, live):
        path.write_bytes(b"half a file")
    hours_ago = time.time() - 2 * F.STALE_DOWNLOAD_S
    os.utime(stale, (hours_ago, hours_ago))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(model_dir / "taef2_encoder.pth", mirror)
    monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "nothing-here"))
    monkeypatch.delenv("CLOAK_OFFLINE", raising=False)
    monkeypatch.setenv("CLOAK_WEIGHTS_URL", mirror.as_uri())
    assert W.resolve(get_spec("taef2"), "encoder") == cache / "taef2_encoder.pth"
    assert not stale.exists() and live.exists()


class TestDamagedCopies:
    """A damaged copy of cloak's own download is fetched again; the user's files never are."""

    def _mirror(self, model_dir: Path, tmp_path: Path, monkeypatch) -> Path:
        mirror = TestDownload()._mirror(model_dir, tmp_path)
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "nothing-here"))
        monkeypatch.delenv("CLOAK_OFFLINE", raising=False)
        monkeypatch.setenv("CLOAK_WEIGHTS_URL", mirror.as_uri())
        return mirror

    def test_a_cached_download_with_other_values_is_fetched_again(
            self, model_dir, tmp_path, monkeypatch, caplog):
        """A file in the cache under an unpinned name (no sha256 to check it by) that
        loads as the model but holds other values than the release (replaced, or left by
        an older cloak that accepted any strict load) is not trusted for ever: it is
        downloaded again, and the download checked."""
        self._mirror(model_dir, tmp_path, monkeypatch)
        cache = tmp_path / "cache"
        cache.mkdir()
        state = W.read_state_dict(model_dir / "taesd_decoder.safetensors")
        state = {k: v * 1.01 if i == 0 else v for i, (k, v) in enumerate(state.items())}
        torch.save(state, cache / "taesd_decoder.pth")
        with caplog.at_level("WARNING", logger="cloak.models.weights"):
            W.load_verified(get_spec("taesd"), "decoder")
        assert "downloading it again" in caplog.text
        fetched = W.read_state_dict(cache / "taesd_decoder.pth")
        assert W.values_digest(W.normalise_keys(fetched, "decoder")) == \
            W.KNOWN_VALUES["taesd"]["decoder"]

    def test_a_damaged_cached_download_is_fetched_again(self, model_dir, tmp_path,
                                                        monkeypatch, caplog):
        self._mirror(model_dir, tmp_path, monkeypatch)
        cache = tmp_path / "cache"
        cache.mkdir()
        pinned, unpinned = cache / "taef2_encoder.pth", cache / "taesd_decoder.pth"
        data = bytearray((model_dir / "taef2_encoder.pth").read_bytes())
        data[-10] ^= 0xFF  # a flipped bit: the pinned sha256 differs
        pinned.write_bytes(bytes(data))
        unpinned.write_bytes(b"\0" * 4096)  # a file that no longer loads
        assert isinstance(W.load_verified(get_spec("taef2"), "encoder"), torch.nn.Module)
        assert isinstance(W.load_verified(get_spec("taesd"), "decoder"), torch.nn.Module)
        assert W.sha256_of(pinned) == W.KNOWN_SHA256["taef2_encoder.pth"]
        W.load_part(get_spec("taesd"), "decoder", unpinned)  # loads strictly now
        assert caplog.text.count("downloading it again") == 2

    def test_a_failed_second_download_names_the_damaged_copy_too(self, tmp_path,
                                                                  monkeypatch):
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "nothing-here"))
        monkeypatch.delenv("CLOAK_OFFLINE", raising=False)
        monkeypatch.setenv("CLOAK_WEIGHTS_URL", (tmp_path / "no-mirror").as_uri())
        cache = tmp_path / "cache"
        cache.mkdir()
        (cache / "taesd_decoder.pth").write_bytes(b"\0" * 4096)
        with pytest.raises(ModelError, match=r"taesd_decoder.pth is damaged \(can't read "
                                             r"weights.*getting it again failed") as caught:
            W.load_verified(get_spec("taesd"), "decoder")
        assert "not found" not in str(caught.value)  # it was found: damaged

    def test_offline_a_damaged_cached_download_is_reported_and_left(self, model_dir,
                                                                    tmp_path, monkeypatch):
        self._mirror(model_dir, tmp_path, monkeypatch)
        monkeypatch.setenv("CLOAK_OFFLINE", "1")
        cache = tmp_path / "cache"
        cache.mkdir()
        (cache / "taesd_decoder.pth").write_bytes(b"\0" * 4096)
        with pytest.raises(ModelError, match="can't read weights") as info:
            W.load_verified(get_spec("taesd"), "decoder")
        # what to do, with the setting that keeps it from being fetched again named
        assert str(info.value).endswith(
            "that copy is cloak's own download, and downloads are off (CLOAK_OFFLINE=1), "
            "so it is not fetched again: delete it and run with downloads on, or put "
            "taesd_decoder.safetensors or .pth in a folder and pass --model-dir DIR or set "
            "CLOAK_MODEL_DIR=DIR")
        assert (cache / "taesd_decoder.pth").read_bytes() == b"\0" * 4096

    def test_a_bad_file_in_the_users_folder_is_never_replaced(self, model_dir, tmp_path,
                                                              monkeypatch):
        self._mirror(model_dir, tmp_path, monkeypatch)  # a download would work
        mine = tmp_path / "mine"
        mine.mkdir()
        data = bytearray((model_dir / "taesd_encoder.safetensors").read_bytes())
        data[-1] ^= 0xFF
        (mine / "taesd_encoder.safetensors").write_bytes(bytes(data))
        with pytest.raises(ModelError, match="sha256.*move it out of that folder"):
            W.load_verified(get_spec("taesd"), "encoder", model_dir=mine)
        assert (mine / "taesd_encoder.safetensors").read_bytes() == bytes(data)
        # cut in half, or random bytes: not the parser's words, but the pin's advice
        for damaged in (bytes(data[:len(data) // 2]), os.urandom(4096)):
            (mine / "taesd_encoder.safetensors").write_bytes(damaged)
            with pytest.raises(W.PinMismatch, match="corrupt or not the published weights"):
                W.load_verified(get_spec("taesd"), "encoder", model_dir=mine)
        assert not (tmp_path / "cache" / "taesd_encoder.pth").exists()


class TestModelDirVariable:
    def test_a_home_relative_cloak_model_dir_is_expanded(self, model_dir, tmp_path,
                                                         monkeypatch):
        monkeypatch.setenv("HOME", str(tmp_path))
        (tmp_path / "weights").mkdir()
        shutil.copy(model_dir / "taesd_encoder.safetensors", tmp_path / "weights")
        monkeypatch.setenv("CLOAK_MODEL_DIR", "~/weights")
        found = W.resolve(get_spec("taesd"), "encoder", allow_download=False)
        assert found == tmp_path / "weights" / "taesd_encoder.safetensors"

    def test_a_cloak_model_dir_that_is_no_folder_is_named(self, tmp_path, monkeypatch,
                                                          caplog):
        monkeypatch.setattr(W, "_warned", set())
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "typo"))
        for _ in range(2):
            with pytest.raises(ModelError) as info:
                W.resolve(get_spec("taesd"), "encoder", allow_download=False)
        assert caplog.text.count(f"CLOAK_MODEL_DIR={tmp_path / 'typo'} is not a folder") == 1
        # The one-line error lists where it looked.
        assert f"looked in {tmp_path / 'typo'}, {tmp_path / 'cache'}" in str(info.value)

    def test_an_unknown_users_home_is_a_folder_not_found_not_a_crash(self, tmp_path,
                                                                     monkeypatch, caplog):
        """`~nouser/x` (no such user): pathlib's expanduser raised "Could not determine
        home directory" as a traceback, from the variable and from model_dir; the path
        is now taken as written, which is no folder, and said so."""
        monkeypatch.setattr(W, "_warned", set())
        monkeypatch.setenv("CLOAK_MODEL_DIR", "~nouser-cloak/x")
        with pytest.raises(ModelError, match="looked in ~nouser-cloak/x"):
            W.resolve(get_spec("taesd"), "encoder", allow_download=False)
        assert "CLOAK_MODEL_DIR=~nouser-cloak/x is not a folder" in caplog.text
        monkeypatch.delenv("CLOAK_MODEL_DIR")
        with pytest.raises(ModelError, match="~nouser-cloak/x is not a folder"):
            load_autoencoder("taesd", model_dir="~nouser-cloak/x", device="cpu")


def test_opencv_is_quiet_while_detecting_and_as_it_was_after(model_dir, monkeypatch):
    """The detector's per-photo DNN warning is muted while it runs; the process's own
    OpenCV log level comes back afterwards (cloak does not keep it changed)."""
    import cv2

    from cloak.budget import find_faces
    from cloak.io import load_photo

    logging_api = cv2.utils.logging
    seen = []
    create = cv2.FaceDetectorYN.create

    def spy(*args, **kwargs):
        seen.append(logging_api.getLogLevel())
        return create(*args, **kwargs)

    monkeypatch.setattr(cv2.FaceDetectorYN, "create", spy)
    previous = logging_api.getLogLevel()
    logging_api.setLogLevel(logging_api.LOG_LEVEL_INFO)
    try:
        example = Path(__file__).resolve().parent.parent / "examples" / "astronaut.jpg"
        rgb = np.round(load_photo(example).rgb * 255).astype(np.uint8)
        assert len(find_faces(rgb, W.resolve_face_detector(allow_download=False))) == 1
        assert seen == [logging_api.LOG_LEVEL_ERROR]
        assert logging_api.getLogLevel() == logging_api.LOG_LEVEL_INFO
    finally:
        logging_api.setLogLevel(previous)


def test_threads_detecting_at_once_leave_opencv_s_log_level_as_it_was():
    """Two threads detecting faces at once (protect() in a web service): each saved the
    level it found, so the second saved the first's quiet level and, ending last, left
    OpenCV's log at errors only for the whole process. The first in saves it, the last
    out puts it back, and it stays quiet until then."""
    import threading

    import cv2

    from cloak.budget import _opencv_errors_only

    log_api = cv2.utils.logging
    previous = log_api.getLogLevel()
    log_api.setLogLevel(log_api.LOG_LEVEL_WARNING)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = []

    def first() -> None:
        with _opencv_errors_only(cv2):
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def second() -> None:
        a_in.wait(10)
        with _opencv_errors_only(cv2):
            b_in.set()
            a_out.wait(10)  # the first has left; this one still detects
            seen.append(log_api.getLogLevel())

    try:
        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert seen == [log_api.LOG_LEVEL_ERROR]
        assert log_api.getLogLevel() == log_api.LOG_LEVEL_WARNING
    finally:
        log_api.setLogLevel(previous)


def test_an_opencv_failure_turns_face_priority_off_for_the_photo(model_dir, monkeypatch,
                                                                 caplog):
    """cv2.error from the detector (an OpenCV build without this DNN path) costs the
    photo its face priority, not the photo."""
    import cv2

    from cloak.budget import find_faces

    def refuse(*args, **kwargs):
        raise cv2.error("OpenCV(4.x) net_impl.cpp: unsupported layer")

    from cloak.io import load_photo

    example = Path(__file__).resolve().parent.parent / "examples" / "astronaut.jpg"
    rgb = np.round(load_photo(example).rgb * 255).astype(np.uint8)  # one face, found
    # by the real detector (test_the_real_detector_finds_the_astronaut)
    monkeypatch.setattr(cv2.FaceDetectorYN, "create", refuse)
    assert find_faces(rgb, W.resolve_face_detector(allow_download=False)) is None
    assert "face priority is off for this photo" in caplog.text


@pytest.mark.parametrize("name", list(MODELS))
def test_loading_leaves_the_callers_random_state_alone(name, model_dir, monkeypatch):
    """Building a model before its weights are loaded would draw its initial weights from
    torch's global random state, the caller's (`protect()` from a fresh process moved it)."""
    monkeypatch.setattr("cloak.models.loading._cache", {})  # a real load, not the process's cache
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    model = load_autoencoder(name)
    assert torch.equal(torch.get_rng_state(), before)
    assert not any(p.is_meta for p in model.parameters())


@pytest.mark.parametrize("name", ["taesd", "taef2"])  # taef2: the blocks' pool branch
def test_in_place_activations_give_the_out_of_place_values_and_gradients(name, model_dir):
    """The blocks' ReLUs and skip add work in place (less memory traffic per step): the
    reconstruction and the gradient an attack step follows are bit for bit those of the
    plain out-of-place formula, ReLU(conv(ReLU(conv(ReLU(conv(x))))) + x)."""
    from torch import nn

    from cloak.models.taesd import Block

    def out_of_place(seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        for layer in seq:
            if isinstance(layer, Block):
                if layer.pool is not None:
                    x = x + layer.pool(x)
                c = layer.conv
                x = torch.relu(c[4](torch.relu(c[2](torch.relu(c[0](x))))) + x)
            elif isinstance(layer, nn.ReLU):
                x = torch.relu(x)
            else:
                x = layer(x)
        return x

    model = load_autoencoder(name)
    photo = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    grads = []
    for forward in (model, lambda x: out_of_place(model.decoder, out_of_place(model.encoder, x))):
        x = photo.clone().requires_grad_(True)
        out = forward(x)
        (out - photo).pow(2).mean().backward()
        grads.append((out.detach(), x.grad))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])


def test_weights_missing_comes_back_whole_from_a_jobs_worker(tmp_path):
    """A --jobs worker sends its error back pickled: WeightsMissing's __init__ takes a
    model spec, and unpickling it by that broke the parent's pool ("worker process
    died"). It comes back with its message and attributes."""
    import pickle

    from cloak.models.registry import MODELS

    exc = W.WeightsMissing(MODELS["taesd"], "encoder", "downloads are off", tmp_path,
                           offline=True)
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is W.WeightsMissing and str(back) == str(exc)
    assert (back.why, back.model_dir, back.offline) == ("downloads are off", tmp_path, True)


class TestWeightFileWords:
    """A weight file of the user's that does not load is said in plain words, with what to
    do: not Python's exception name, a bare number, or torch's own (cut-off) message."""

    @pytest.fixture
    def mine(self, tmp_path, model_dir, monkeypatch):
        monkeypatch.setenv("CLOAK_OFFLINE", "1")
        folder = tmp_path / "mine"
        folder.mkdir()
        (folder / "taesd_decoder.safetensors").symlink_to(
            model_dir / "taesd_decoder.safetensors")
        return folder

    def refusal(self, folder, part: str = "encoder") -> str:
        with pytest.raises(ModelError) as caught:
            W.load_verified(get_spec("taesd"), part, model_dir=folder)
        return str(caught.value)

    @pytest.mark.parametrize("content, words", [
        (b"", "the file is empty (0 bytes)"),
        (b"hello world", "not a weights file (damaged, or another kind of file")])
    def test_an_unreadable_file_is_said_plainly_with_what_to_do(self, mine, content, words):
        (mine / "taesd_encoder.pth").write_bytes(content)
        message = self.refusal(mine)
        assert f"can't read weights {mine / 'taesd_encoder.pth'}: {words}" in message
        assert message.endswith("or move it out of that folder so cloak looks in the next "
                                "one (or downloads it)")
        assert "taesd_encoder.pth)" in message  # the address to get it from
        assert "EOFError" not in message and ": 101" not in message

    def test_another_models_or_parts_file_is_named(self, mine, model_dir):
        (mine / "taesd_encoder.pth").symlink_to(model_dir / "taef1_encoder.safetensors")
        message = self.refusal(mine)
        assert "it holds taef1's encoder weights" in message
        assert "put taesd's encoder file there" in message
        assert "size mismatch" not in message and "state_dict" not in message
        (mine / "taesd_decoder.safetensors").unlink()
        (mine / "taesd_decoder.safetensors").symlink_to(model_dir / "taesd_encoder.safetensors")
        message = self.refusal(mine, "decoder")
        assert "it holds taesd's encoder weights" in message, message
        assert "Missing key" not in message
        # one layout, two models (taesd, taesdxl): told apart by the weights' fingerprint
        (mine / "taef1_encoder.pth").symlink_to(model_dir / "taesdxl_encoder.safetensors")
        with pytest.raises(ModelError, match="it holds taesdxl's encoder weights"):
            W.load_verified(get_spec("taef1"), "encoder", model_dir=mine)

    def test_a_photo_saved_as_weights_is_another_kind_of_file(self, mine):
        """torch says "Weights only load failed" of any data that is not its zip: that
        read as a pickle holding code, not as a photo saved under the weights' name."""
        from PIL import Image

        Image.new("RGB", (8, 8)).save(mine / "taesd_encoder.pth", format="JPEG")
        assert "not a weights file (damaged, or another kind of file" in self.refusal(mine)
