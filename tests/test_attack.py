"""Ensemble PGD: bounds, zero steps, seeding, and that it really raises the loss."""

from __future__ import annotations

import pytest
import torch

from cloak import metrics, objectives
from cloak.attack import protect_pgd, step_size
from cloak.models import load_autoencoder


@pytest.fixture
def setup(model_dir, small_photo, tmp_path):
    import numpy as np
    from PIL import Image

    img = Image.open(small_photo(tmp_path / "p.png", size=(64, 64))).convert("RGB")
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    return x, [load_autoencoder("taesd")]


def run(x, models, steps=4, seed=0, eps=8 / 255, **kw):
    eps_map = torch.full((1, 1, *x.shape[-2:]), eps)
    eps_map[..., :16, :] = eps / 4  # a non-uniform budget
    return protect_pgd(x, models, eps_map, steps, torch.Generator().manual_seed(seed), **kw), \
        eps_map


class TestProtectPGD:
    def test_zero_steps_returns_input_unchanged(self, setup):
        x, models = setup
        delta, _ = run(x, models, steps=0)
        assert torch.count_nonzero(delta) == 0

    @pytest.mark.parametrize("robust", [False, True])
    def test_respects_per_pixel_bound_and_range(self, setup, robust):
        x, models = setup
        delta, eps_map = run(x, models, robust=robust)
        assert bool((delta.abs() <= eps_map + 1e-7).all())
        assert float((x + delta).min()) >= 0 and float((x + delta).max()) <= 1
        assert float(delta.abs().max()) > 0

    def test_same_seed_same_delta(self, setup):
        x, models = setup
        a, _ = run(x, models, robust=True, seed=5)
        b, _ = run(x, models, robust=True, seed=5)
        assert torch.equal(a, b)

    @pytest.mark.parametrize("objective", ["e2e", "latent", "encoder"])
    def test_raises_its_loss(self, setup, objective):
        x, models = setup
        m = models[0]
        if objective == "e2e":
            loss = lambda xa: objectives.reconstruction_error(m, xa, x)
        elif objective == "latent":
            z = m.encode(x)
            loss = lambda xa: objectives.latent_shift(m, xa, z)
        else:
            zt = objectives.gray_target_latent(m, x)
            loss = lambda xa: objectives.latent_to_target(m, xa, zt)
        delta, eps_map = run(x, models, steps=6, objective=objective, robust=False)
        with torch.no_grad():
            if objective == "latent":
                # Zero at x; the attack starts from seeded noise inside a quarter of the
                # budget, so the steps must do much better than that start.
                noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
                start = (x + (noise * 2 - 1) * eps_map * 0.25).clamp(0, 1)
                assert float(loss(x + delta)) > 2 * float(loss(start))
            else:  # the encoder loss is negative: compare the gain with its size
                gain = float(loss(x + delta)) - float(loss(x))
                assert gain > 0.05 * abs(float(loss(x)))

    def test_cancel_stops(self, setup):
        from cloak.errors import Cancelled

        x, models = setup
        with pytest.raises(Cancelled):
            run(x, models, steps=50, should_stop=lambda: True)

    def test_a_start_is_bounded_and_taken_up(self, setup):
        """`init` (coarse_to_fine's upsampled start) is clipped to the bound and the range,
        and the steps go on from it: one small last step moves each pixel by at most its
        size from the clipped start."""
        x, models = setup
        init = torch.full_like(x, 0.5)  # far over the bound everywhere
        delta, eps_map = run(x, models, steps=1, init=init, step_start=0.05)
        assert bool((delta.abs() <= eps_map + 1e-7).all())
        assert bool(((x + delta) >= 0).all() and ((x + delta) <= 1).all())
        start = (x + eps_map).clamp(0, 1) - x
        assert float((delta - start).abs().max()) <= 0.05 * 8 / 255 + 1e-6
        with pytest.raises(ValueError, match="init must be shaped like x"):
            run(x, models, steps=1, init=init[..., :32, :])

    def test_step_size_decays(self):
        sizes = [step_size(i, 10) for i in range(10)]
        assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1] > 0

    @pytest.mark.parametrize("start", [0.25, 0.5])
    def test_first_step_is_step_start_of_the_bound(self, setup, start):
        x, models = setup
        x = x * 0.8 + 0.1  # away from 0 and 1, so clamping cannot shorten the step
        delta, eps_map = run(x, models, steps=1, step_start=start)
        moved = delta != 0
        assert moved.float().mean() > 0.9
        assert torch.allclose(delta.abs()[moved], (start * eps_map).expand_as(delta)[moved],
                              atol=1e-6)

    def test_eot_share_alternates_whole_cycles(self):
        from cloak.attack import uses_eot

        assert [uses_eot(s, 4, 0.5, 16) for s in range(16)] == [False] * 4 + [True] * 4 + \
            [False] * 4 + [True] * 4
        assert not any(uses_eot(s, 4, 0.0, 16) for s in range(16))
        assert all(uses_eot(s, 4, 1.0, 16) for s in range(16))
        # medium's share (a quarter) over 4 cycles: the fourth
        assert [uses_eot(s, 8, 0.25, 32) for s in range(0, 32, 8)] == [False] * 3 + [True]
        # runs too short for a quarter of their cycles still draw, on their last cycle:
        # low's 24 steps (3 cycles of 8) and fast's 4 (half a cycle)
        assert [uses_eot(s, 8, 0.25, 24) for s in range(0, 24, 8)] == [False, False, True]
        assert all(uses_eot(s, 8, 0.25, 4) for s in range(4))
        assert not any(uses_eot(s, 8, 0.0, 4) for s in range(4))

    def test_posting_transforms_reach_every_view_in_turn(self, setup, monkeypatch):
        """With a quarter share and two views (both_roundings' grids), the cycles that
        draw posting transforms take both views, not one of them every time."""
        from cloak import attack

        x, models = setup
        seen: list[tuple[tuple[int, int], bool]] = []
        drawn = [False]
        loss_fn = attack._loss_fn

        def recording_loss(objective, models_, x_, view=None):
            loss = loss_fn(objective, models_, x_, view)
            if view is None:  # the inner loss, on what a view has already resized
                return loss

            def recorded(index, x_adv):
                seen.append((view, drawn[0]))
                drawn[0] = False
                return loss(index, x_adv)
            return recorded

        def recording_posting(x_adv, generator):
            drawn[0] = True
            return x_adv

        monkeypatch.setattr(attack, "_loss_fn", recording_loss)
        monkeypatch.setattr(attack, "random_posting", recording_posting)
        views = [(64, 64), (56, 56)]
        run(x, models, steps=8, robust=True, eot_share=0.25, view_size=views)
        assert len(seen) == 8
        assert {view for view, eot in seen if eot} == set(views)
        assert sum(eot for _, eot in seen) == 2  # a quarter of the 8 one-model cycles
        assert uses_eot_grouped(0.25, steps=8, renderings=2) == [False] * 6 + [True] * 2

    @pytest.mark.parametrize("steps, cycle, renderings", [
        (24, 4, 3), (24, 8, 3), (64, 4, 4), (64, 8, 4), (32, 4, 2), (4, 4, 2), (32, 8, 4),
        (64, 8, 5), (32, 5, 3), (64, 4, 5)])  # uneven splits: high --robust at 10:7 is 8/5
    def test_spreading_posting_transforms_over_views_keeps_their_share(
            self, steps, cycle, renderings):
        """As many cycles draw as the share of the run's cycles gives (low's and high's
        --robust; the first spread took a quarter of each view's cycles and, with the
        short-run rule, drew on every cycle of low; the second lost cycles where the
        renderings split the cycles unevenly: 1 of 2 for high --robust on a 10:7 photo),
        on as many renderings as there are such cycles."""
        from cloak.attack import uses_eot

        cycles = range(0, steps, cycle)  # each cycle's first step (the last may be short)
        for share in (0.25, 0.1, 0.3, 0.5, 0.75):
            counts = [sum(uses_eot(s, cycle, share, steps, n) for s in cycles)
                      for n in (renderings, 1)]
            assert counts[0] == counts[1], (share, counts)
        spread = [uses_eot(s, cycle, 0.25, steps, renderings) for s in range(steps)]
        drawing = {s // cycle for s in range(steps) if spread[s]}
        assert all(spread[c * cycle:(c + 1) * cycle] == [True] * len(
            spread[c * cycle:(c + 1) * cycle]) for c in drawing)  # whole cycles
        assert len({c % renderings for c in drawing}) == min(len(drawing), renderings)

    def test_perceptual_weight_cuts_low_frequency_colour_shift(self, setup):
        x, models = setup
        plain, _ = run(x, models, steps=8, robust=False)
        shaped, _ = run(x, models, steps=8, robust=False, perceptual_weight=1.0)
        assert float(objectives.low_frequency_energy(shaped)) < \
            0.8 * float(objectives.low_frequency_energy(plain))

    def test_small_photo_is_attacked_as_the_editor_sees_it(self, setup):
        """A photo smaller than the view size (or with sides not multiples of 8) is shown
        to the models resized to `view_size`; the perturbation keeps the photo's size."""
        x, (net,) = setup
        x = x[..., :60, :50]  # 60x50: smaller than 128, not multiples of 8
        seen = []
        hook = net.encoder.register_forward_pre_hook(
            lambda _m, args: seen.append(tuple(args[0].shape[-2:])))
        try:
            delta, eps_map = run(x, [net], steps=2, view_size=128)
        finally:
            hook.remove()
        assert delta.shape == x.shape
        assert (delta.abs() <= eps_map + 1e-6).all() and delta.abs().max() > 0
        assert seen and all(max(s) == 128 and s[0] % 8 == 0 == s[1] % 8 for s in seen)


class TestDecoderReuse:
    def test_decoder_runs_on_one_turn_in_k_plus_1(self, setup):
        x, (net,) = setup
        calls = {"encoder": 0, "decoder": 0}
        hooks = [getattr(net, part).register_forward_pre_hook(
            lambda _m, _a, part=part: calls.__setitem__(part, calls[part] + 1))
            for part in calls]
        try:
            run(x, [net], steps=6, decoder_reuse=2)
        finally:
            for hook in hooks:
                hook.remove()
        assert calls == {"encoder": 6, "decoder": 2}  # turns 0 and 3 run the decoder

    def test_raises_the_end_to_end_loss_within_the_bound(self, setup):
        x, (net,) = setup
        delta, eps_map = run(x, [net], steps=6, decoder_reuse=1, view_size=128)
        assert (delta.abs() <= eps_map + 1e-7).all()
        with torch.no_grad():
            def loss(xa):  # as the models saw it: resized to the 128 px view
                return objectives.reconstruction_error(
                    net, metrics.resize_long(xa, 128), metrics.resize_long(x, 128))

            assert float(loss(x + delta)) > 1.05 * float(loss(x))

    def test_off_by_default_and_e2e_only(self, setup):
        x, models = setup
        plain, _ = run(x, models, steps=3)
        assert torch.equal(plain, run(x, models, steps=3, decoder_reuse=0)[0])
        assert not torch.equal(plain, run(x, models, steps=3, decoder_reuse=1)[0])
        with pytest.raises(ValueError, match="decoder_reuse needs objective 'e2e'"):
            run(x, models, steps=3, objective="latent", decoder_reuse=1)


class TestDeltaKernel:
    def test_models_see_the_filtered_delta_and_the_bound_holds_on_delta(self, setup):
        from cloak.attack import _filter_fn

        x, models = setup
        identity = torch.zeros(1, 1, 3, 3)
        identity[..., 1, 1] = 1
        d = torch.rand_like(x) - 0.5
        assert torch.allclose(_filter_fn(identity, x)(d), d, atol=1e-6)
        assert _filter_fn(None, x)(d) is d
        blur = torch.full((1, 1, 3, 3), 1 / 9)
        plain, _ = run(x, models, steps=3)
        blurred, eps_map = run(x, models, steps=3, delta_kernel=blur)
        assert not torch.equal(plain, blurred)
        assert bool((blurred.abs() <= eps_map + 1e-7).all())
        # The models see only the filtered delta: through a zero filter they see none and
        # the gradient is zero in every step, which the attack refuses (a copy unchanged,
        # or the latent objective's start noise, is no protection)
        from cloak.attack import NoGradient

        with pytest.raises(NoGradient, match="no gradient to follow in any step"):
            run(x, models, steps=3, delta_kernel=torch.zeros(1, 1, 3, 3))


class TestAlsoFrom:
    def test_whole_cycles_go_to_the_other_rendering(self, setup):
        """With one model a cycle is one step: steps 1 and 3 of 4 see x, steps 2 and 4 the
        other rendering (here a darker one), through its own filter."""
        x, models = setup
        darker = x * 0.5
        plain, _ = run(x, models, steps=4)
        mixed, eps_map = run(x, models, steps=4, also_from=[(darker, None)])
        first_only, _ = run(x, models, steps=1, also_from=[(darker, None)])
        assert torch.equal(first_only, run(x, models, steps=1)[0])  # step 1 on x
        assert not torch.equal(plain, mixed)  # later steps saw the other one
        assert bool((mixed.abs() <= eps_map + 1e-7).all())
        # Through a zero filter the other rendering's cycle gives no gradient: after steps
        # 1 and 2, delta is step 1's alone (both runs' first step is half the bound).
        blind, _ = run(x, models, steps=2, also_from=[(darker, torch.zeros(1, 1, 3, 3))])
        assert torch.equal(blind, first_only)

    def test_a_view_plan_picks_the_rendering_of_each_step(self, setup):
        """A plan that never names the other rendering leaves delta as without it; one
        that names it from step 1 starts there, which the default plan does not."""
        x, models = setup
        darker = x * 0.5
        plain, _ = run(x, models, steps=3)
        never = run(x, models, steps=3, also_from=[(darker, None)],
                    view_plan=lambda step, cycle, n: 0)[0]
        assert torch.equal(never, plain)
        other_first = run(x, models, steps=1, also_from=[(darker, None)],
                          view_plan=lambda step, cycle, n: n - 1)[0]
        default_first = run(x, models, steps=1, also_from=[(darker, None)])[0]
        assert torch.equal(default_first, run(x, models, steps=1)[0])
        assert not torch.equal(other_first, default_first)

    def test_a_view_plan_out_of_range_is_refused(self, setup):
        x, models = setup
        with pytest.raises(ValueError, match="view_plan gave -1 for 2 renderings"):
            run(x, models, steps=1, also_from=[(x * 0.5, None)],
                view_plan=lambda step, cycle, n: -1)

    def test_other_shapes_are_refused(self, setup):
        x, models = setup
        with pytest.raises(ValueError, match="shaped like x"):
            run(x, models, also_from=[(x[..., :32, :], None)])


def uses_eot_grouped(share: float, steps: int, renderings: int) -> list[bool]:
    from cloak.attack import uses_eot

    return [uses_eot(s, 1, share, steps, renderings) for s in range(steps)]
