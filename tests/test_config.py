"""ProtectConfig: presets fill the blanks, validation, and the editing sizes."""

from __future__ import annotations

import dataclasses
import re

import pytest

from cloak import ProtectConfig
from cloak.config import PRESETS
from cloak.errors import ConfigError


def test_medium_is_the_default_and_attacks_at_its_working_size():
    config = ProtectConfig()
    assert config.strength == "medium" and config.eps255 == pytest.approx(8)
    assert config.editing_sizes == (config.working_size,) == (512,)
    assert config.attack_size == 512


def test_high_attacks_both_editing_sizes_at_1024():
    config = ProtectConfig(strength="high")
    assert config.editing_sizes == PRESETS["high"].view_sizes == (512, 1024)
    assert config.attack_size == 1024  # the detail the largest size needs


def test_editor_sizes_raise_the_working_size_never_lower_it():
    assert ProtectConfig(view_sizes=(512, 1024)).attack_size == 1024
    assert ProtectConfig(view_sizes=(384,)).attack_size == 512
    assert ProtectConfig(view_sizes=[512, 1024]).fingerprint()["view_sizes"] == [512, 1024]
    assert ProtectConfig(view_sizes=[512, 1024]).fingerprint()["working_size"] == 1024


def test_replace_recomputes_the_sizes_instead_of_keeping_stale_ones():
    assert ProtectConfig().replace(working_size=384).attack_size == 384
    assert ProtectConfig().replace(working_size=384).editing_sizes == (384,)
    assert ProtectConfig(strength="high").replace(view_sizes=(512,)).attack_size == 512


@pytest.mark.parametrize("sizes", [(100,), (512, 1001), (4096,)])
def test_bad_editor_sizes_are_a_config_error(sizes):
    with pytest.raises(ConfigError, match="view sizes must be multiples of 8"):
        ProtectConfig(view_sizes=sizes)


def test_unknown_strength_lists_the_choices():
    with pytest.raises(ConfigError, match="choose from fast, low, medium, high"):
        ProtectConfig(strength="extreme")


def test_visibility_map_settings_come_from_the_preset_and_can_be_overridden():
    medium, fast = ProtectConfig(), ProtectConfig(strength="fast")
    assert (medium.flat_floor, medium.contrast_ref) == (0.1, 0.1)
    assert (fast.flat_floor, fast.contrast_ref) == (0.3, 0.05)  # more budget in flat areas
    custom = ProtectConfig(flat_floor=0.2)
    assert custom.flat_floor == 0.2 and custom.fingerprint()["flat_floor"] == 0.2
    assert ProtectConfig().fingerprint() != ProtectConfig(contrast_ref=0.05).fingerprint()


def test_step_start_comes_from_the_preset_and_changes_the_fingerprint():
    assert ProtectConfig().step_start == 0.25  # medium: measured better than 0.5
    assert ProtectConfig(strength="high").step_start == 0.25  # measured at 512 and 1024
    assert ProtectConfig(strength="fast").step_start == 0.5  # few steps, big ones
    assert ProtectConfig().fingerprint() != ProtectConfig(step_start=0.5).fingerprint()


def test_the_models_order_and_both_roundings_change_the_fingerprint():
    """The attack takes the models in the order given (taesd,taesdxl and taesdxl,taesd
    made copies up to 8 levels apart), and both_roundings changes its views: a resume
    must not take a copy made either other way for this one."""
    first = ProtectConfig(models=("taesd", "taesdxl")).fingerprint()
    assert first != ProtectConfig(models=("taesdxl", "taesd")).fingerprint()
    assert first["models"] == ["taesd", "taesdxl"]
    assert ProtectConfig().fingerprint() != ProtectConfig(both_roundings=False).fingerprint()


def test_editing_the_mask_changes_the_fingerprint(tmp_path):
    mask = tmp_path / "mask.png"
    mask.write_bytes(b"first mask")
    before = ProtectConfig(mask_path=str(mask)).fingerprint()
    mask.write_bytes(b"edited mask")
    assert ProtectConfig(mask_path=str(mask)).fingerprint() != before
    assert ProtectConfig().fingerprint()["mask_sha256"] is None


@pytest.mark.parametrize("field, value", [("flat_floor", -0.1), ("flat_floor", 1.5),
                                          ("contrast_ref", 0.0), ("step_start", 0.0),
                                          ("step_start", 2.0)])
def test_bad_visibility_map_settings_are_a_config_error(field, value):
    with pytest.raises(ConfigError):
        ProtectConfig(**{field: value})


@pytest.mark.parametrize("field, value, message", [
    ("models", None, "models must be model names"),
    ("models", ("taesd", 3), "models must be model names"),
    ("faces", "no", "faces must be True or False, got 'no'"),  # a str is always true
    ("measure", None, "measure must be True or False"),
    ("robust", 2, "robust must be True or False"),
    ("device", "gpu", "unknown device 'gpu'; use auto, cpu, cuda (or cuda:N) or mps"),
    ("device", 0, "unknown device 0"),
    ("metadata", {"keep_gps": True}, "metadata must be a cloak.metadata.MetadataPolicy"),
    ("model_dir", 3, "model_dir must be a path"),
    ("strength", ["fast"], "unknown strength ['fast']"),
    ("perceptual_weight", "0.3", "perceptual_weight must be a number, got '0.3'"),
    ("eot_share", "0.5", "eot_share must be a number"),
    ("contrast_ref", "x", "contrast_ref must be a number"),
    ("contrast_ref", float("inf"), "contrast_ref must be a number, got inf"),
    ("flat_floor", float("nan"), "flat_floor must be a number"),
    ("view_sizes", 512, "view sizes must be whole numbers, as a tuple"),
    ("view_sizes", "512", "view sizes must be whole numbers, as a tuple"),  # not 5, 1, 2
    ("view_sizes", (512.7,), "view sizes must be whole numbers"),  # not cut to 512
])
def test_fields_of_the_wrong_kind_are_refused_when_made(field, value, message):
    """Refused when the config is made, not after an attack's minutes (metadata failed at
    the save; a device at the first photo; faces="no" ran with faces on)."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        ProtectConfig(**{field: value})


def test_flags_and_device_are_taken_in_their_usual_spellings():
    import numpy as np

    config = ProtectConfig(faces=np.False_, measure=1, device=" CUDA:1 ")
    assert (config.faces, config.measure, config.device) == (False, True, "cuda:1")
    assert ProtectConfig(device="").device is None and ProtectConfig(device="auto").device


@pytest.mark.parametrize("field, value, message", [
    ("eps", 0.5 / 255, "eps must be in"),  # rounds to no change in an 8-bit photo
    ("steps", 2.5, "whole number"),
    ("steps", float("nan"), "whole number"),
    ("eot_samples", 1.5, "whole number"),
    ("seed", 2 ** 64, "seed must be"),
    ("seed", -1, "seed must be"),
    ("seed", None, "seed must be"),  # Generator.manual_seed(None) would fail mid-run
])
def test_values_that_would_fail_later_are_refused_now(field, value, message):
    with pytest.raises(ConfigError, match=message):
        ProtectConfig(**{field: value})


def test_numpy_integers_are_whole_numbers():
    import numpy as np

    assert ProtectConfig(steps=np.int64(3), seed=np.int64(7)).steps == 3


def test_a_gpu_index_this_machine_lacks_is_refused(monkeypatch):
    """No GPU at all, and (one GPU faked, as CI has none) an index past the last one."""
    import torch

    from cloak.device import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        pick_device("cuda:7")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"has 1 CUDA GPU\(s\), numbered from 0"):
        pick_device("cuda:1")
    assert pick_device("cuda:0") == torch.device("cuda:0")


def test_the_readmes_preset_table_states_the_presets():
    """README's "Strength presets" table is what users choose by; every figure in it is
    read back and compared with PRESETS."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Strength presets", 1)[1]
    rows = [line for line in section.splitlines()[2:]
            if line.startswith("| ") and not line.startswith("|---")]
    header, *rows = rows[:1 + len(PRESETS)]
    assert header.startswith("| preset | eps")
    stated = {}
    for row in rows:
        name, eps, steps, first, size, editing, perceptual, eot = (
            cell.strip() for cell in row.strip("|").split("|"))
        stated[name.split()[0]] = (float(eps), int(steps), float(first), int(size),
                                   tuple(int(s) for s in re.findall(r"\d+", editing)),
                                   float(perceptual), eot == "on")
    assert list(stated) == list(PRESETS)
    for name, preset in PRESETS.items():
        config = ProtectConfig(strength=name)
        assert stated[name] == (preset.eps255, preset.steps, preset.step_start,
                                config.attack_size, config.editing_sizes,
                                preset.perceptual_weight, preset.robust), name


def test_the_seed_is_a_setting_only_where_something_is_drawn():
    """The default attack draws nothing, so outputs are the same for every seed
    (test_protect pins that): another --seed must not make a rerun refuse them as "made
    with other settings". Where --robust or --objective latent draws, it does."""
    assert ProtectConfig(seed=5).fingerprint() == ProtectConfig().fingerprint()
    assert ProtectConfig(seed=5).fingerprint()["seed"] == 0
    for drawing in ({"robust": True}, {"objective": "latent"}):
        assert ProtectConfig(seed=5, **drawing).draws_at_random
        assert (ProtectConfig(seed=5, **drawing).fingerprint()
                != ProtectConfig(**drawing).fingerprint())
    assert not ProtectConfig(robust=True, eot_share=0.0).draws_at_random


def test_settings_the_attack_leaves_unused_are_not_a_change():
    """Without robust the posting transforms' count and share are unused, and without the
    map (perceptual=False) the colour-shift penalty is too (pipeline.protect_array): the
    output is the same whatever they are, so they must not make a rerun redo the photo."""
    plain = ProtectConfig(strength="low", perceptual=False)
    assert plain.perceptual_weight == 0.3  # low's penalty, which the attack then drops
    assert plain.fingerprint() == plain.replace(perceptual_weight=0.0).fingerprint()
    assert ProtectConfig().fingerprint() == ProtectConfig(eot_samples=3,
                                                          eot_share=1.0).fingerprint()
    robust = ProtectConfig(robust=True)
    assert robust.fingerprint() != robust.replace(eot_samples=3).fingerprint()
    assert robust.fingerprint() != robust.replace(eot_share=1.0).fingerprint()
    low = ProtectConfig(strength="low")
    assert low.fingerprint() != low.replace(perceptual_weight=0.0).fingerprint()
    # without the map the budget is uniform, so the map's shape is unused too; and with
    # robust but no share of cycles drawing transforms, so is their count
    assert plain.fingerprint() == plain.replace(flat_floor=0.5, contrast_ref=0.2).fingerprint()
    assert ProtectConfig().fingerprint() != ProtectConfig(flat_floor=0.5).fingerprint()
    never = ProtectConfig(robust=True, eot_share=0.0)
    assert never.fingerprint() == never.replace(eot_samples=3).fingerprint()
    assert never.fingerprint() != robust.fingerprint()


def test_each_model_is_attacked_once_in_the_order_given():
    """`--models taesd,taesd` would double taesd's share of the steps, and record settings
    that a later `--models taesd` counts as other ones."""
    assert ProtectConfig(models=("taef2", "taesd", "taef2")).models == ("taef2", "taesd")
    assert ProtectConfig(models="taesd, taesd").fingerprint() == \
        ProtectConfig(models=("taesd",)).fingerprint()
    with pytest.raises(ConfigError, match="unknown model 'sd'"):
        ProtectConfig(models=("taesd", "sd"))


def test_replace_with_another_strength_takes_that_presets_numbers():
    """replace(strength=...) kept the first preset's steps, budget and sizes (a config
    labelled high ran, and was recorded as, high with fast's 4 steps)."""
    moved = ProtectConfig(strength="fast").replace(strength="high")
    assert moved == ProtectConfig(strength="high")
    assert (moved.steps, moved.eps255, moved.view_sizes) == (64, 12.0, (512, 1024))
    assert moved.fingerprint() == ProtectConfig(strength="high").fingerprint()
    # what was given stays given, through any number of replaces
    given = ProtectConfig(strength="fast", steps=7).replace(seed=3).replace(strength="high")
    assert (given.steps, given.eps255) == (7, 12.0)
    later = ProtectConfig(strength="fast").replace(steps=9).replace(strength="medium")
    assert later == ProtectConfig(strength="medium", steps=9)
    # given, though equal to the preset's: kept (the two configs are equal meanwhile)
    assert ProtectConfig(strength="fast", steps=4) == ProtectConfig(strength="fast")
    assert ProtectConfig(strength="fast", steps=4).replace(strength="high").steps == 4
    assert "_from_preset" not in dataclasses.asdict(moved)
    import pickle

    assert pickle.loads(pickle.dumps(ProtectConfig(strength="fast"))).replace(
        strength="high").steps == 64  # as a --jobs worker gets it


def test_a_path_object_is_kept_as_text(tmp_path):
    """A pathlib.Path as mask_path was kept as it was: the report and the batch record,
    both JSON, then failed on it (every photo of a batch)."""
    import json
    from pathlib import Path

    config = ProtectConfig(mask_path=Path("mask.png"), model_dir=tmp_path)
    assert config.mask_path == "mask.png" and config.model_dir == str(tmp_path)
    json.dumps(config.fingerprint())
    with pytest.raises(ConfigError, match="mask_path must be a path"):
        ProtectConfig(mask_path=b"mask.png")
    for name in ("mask_path", "model_dir"):  # an empty one was taken as none given
        with pytest.raises(ConfigError, match=f"{name} is empty"):
            ProtectConfig(**{name: ""})


def test_model_names_in_any_case_as_verify_takes_them():
    assert ProtectConfig(models="TAESD, taef2").models == ("taesd", "taef2")
    assert ProtectConfig(models=("TaeSD", "taesd")).models == ("taesd",)


def test_an_editing_size_given_twice_is_taken_once():
    """--editor-sizes 512,512 attacks as 512 does (the same copy): recorded so, a rerun
    with 512 refused the copy as "made with other settings"."""
    assert ProtectConfig(view_sizes=(512, 1024, 512)).view_sizes == (512, 1024)
    assert ProtectConfig(view_sizes=(512, 512)).fingerprint() == \
        ProtectConfig(view_sizes=(512,)).fingerprint()
