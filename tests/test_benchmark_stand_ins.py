"""Benchmarks that swap their own attack loop, or their own plan, into the pipeline: these
pin that what they swap in still receives what the pipeline passes (a newer keyword of
protect_pgd once crashed step_levers on every run, and once overrode view_plans' plans
without a word)."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import step_levers
import view_plans

from cloak import attack


def test_step_levers_stand_in_takes_what_protect_pgd_takes():
    """Every keyword, and the ones the pipeline passes by position in the same order."""
    own = list(inspect.signature(attack.protect_pgd).parameters)
    stand_in = list(inspect.signature(step_levers.lever_pgd({})).parameters)
    assert set(own) <= set(stand_in), f"missing: {sorted(set(own) - set(stand_in))}"
    positional = own[:own.index("perceptual_weight") + 1]  # pipeline.protect_array's
    assert stand_in[:len(positional)] == positional


def test_view_plans_hands_each_plan_to_the_attack(monkeypatch, model_dir):
    seen = []

    def record(x, *args, **kwargs):
        seen.append((kwargs.get("view_plan"), kwargs.get("also_view")))
        return torch.full_like(x, 1 / 255)  # a change: none at all fails as no gradient

    monkeypatch.setattr(attack, "protect_pgd", record)
    rgb = np.random.default_rng(0).random((64, 96, 3), dtype=np.float32)
    for plan in view_plans.PLANS:
        view_plans.protect_with_plan(rgb, plan, (336, 512))
    assert [plan for plan, _ in seen] == [view_plans.PLANS[p][1] for p in view_plans.PLANS]
    assert [view for _, view in seen] == [(336, 512) if view_plans.PLANS[p][2] else None
                                         for p in view_plans.PLANS]
