"""DINO-WM predictor (Zhou et al., ICML 2025, arXiv 2411.04983): frame-causal attention holds exactly, the
paper's sizes give its ~19 M parameters, action/proprio reach every patch, it can learn, targets stay detached,
and the WorldModel wrapper packs, predicts and scores consistently."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from navkit.common.errors import FieldError
from navkit.planning.dino_wm import (DinoWmModel, DinoWmModelConfig, DinoWmPredictor, LatentHistory, PredictorConfig,
                                     block_causal_mask, latent_mse, pack_frame, teacher_forced_loss, unpack_frame)

torch.set_num_threads(1)


def _tiny(**overrides: object) -> PredictorConfig:
    """A predictor small enough to train in a test, with every feature of the real one (history, proprio, frameskip)."""
    base: dict[str, object] = dict(num_patches=4, latent_dim=8, action_dim=2, frameskip=2, proprio_dim=3, action_emb_dim=4,
                proprio_emb_dim=4, history=3, depth=2, heads=2, head_dim=8, mlp_dim=32, dropout=0.1)
    base.update(overrides)
    return PredictorConfig.cpu(**base)


def _inputs(cfg: PredictorConfig, b: int = 2, h: int | None = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h = h or cfg.history
    z = torch.randn(b, h, cfg.num_patches, cfg.latent_dim, generator=g)
    a = torch.randn(b, h, cfg.step_action_dim, generator=g)
    p = torch.randn(b, h, cfg.proprio_dim, generator=g)
    return z, a, p


def test_mask_lets_each_frame_see_exactly_itself_and_the_past() -> None:
    m = block_causal_mask(3, 2)
    expected = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0],
                             [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0],
                             [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    assert m.dtype == torch.bool and torch.equal(m, expected)
    pred = DinoWmPredictor(_tiny())
    assert pred.block_mask.shape == (12, 12) and pred.block_mask.dtype == torch.bool
    # Built once: forward passes reuse the same storage.
    ptr = pred.block_mask.data_ptr()
    pred(*_inputs(pred.config)[:2], _inputs(pred.config)[2])
    assert pred.block_mask.data_ptr() == ptr


@pytest.mark.parametrize("changed", [0, 1, 2])
def test_future_frames_never_change_past_predictions_but_the_present_does(changed: int) -> None:
    torch.manual_seed(0)
    pred = DinoWmPredictor(_tiny()).eval()
    z, a, p = _inputs(pred.config)
    with torch.no_grad():
        base_z, base_p = pred(z, a, p)
        for what in ("latents", "actions", "proprio"):
            z2, a2, p2 = z.clone(), a.clone(), p.clone()
            {"latents": z2, "actions": a2, "proprio": p2}[what][:, changed] += 3.0
            out_z, out_p = pred(z2, a2, p2)
            assert out_p is not None and base_p is not None
            # Exactly equal, not approximately: masked keys get zero weight.
            assert torch.equal(out_z[:, :changed], base_z[:, :changed]), what
            assert torch.equal(out_p[:, :changed], base_p[:, :changed]), what
            # The frame that changed does move its own prediction (the test is not vacuous).
            assert (out_z[:, changed] - base_z[:, changed]).abs().max() > 1e-3, what


def test_paper_preset_has_the_papers_size_and_runs() -> None:
    cfg = PredictorConfig.paper()
    assert (cfg.num_patches, cfg.latent_dim, cfg.width, cfg.depth, cfg.heads, cfg.head_dim, cfg.mlp_dim) == \
        (196, 384, 404, 6, 16, 64, 2048)
    assert cfg.step_action_dim == 10 and cfg.dropout == 0.1
    torch.manual_seed(0)
    pred = DinoWmPredictor(cfg).eval()
    n = sum(q.numel() for q in pred.parameters())
    assert 19e6 * 0.85 <= n <= 19e6 * 1.15, n
    z, a, p = _inputs(cfg, b=1, h=1)  # one frame: 196 tokens, cheap enough for a test
    with torch.no_grad():
        out_z, out_p = pred(z, a, p)
    assert out_z.shape == (1, 1, 196, 384) and out_p is not None and out_p.shape == (1, 1, 4)


def test_cpu_preset_shapes_and_rollout() -> None:
    cfg = PredictorConfig.cpu()
    torch.manual_seed(0)
    pred = DinoWmPredictor(cfg).eval()
    assert sum(q.numel() for q in pred.parameters()) < 2e6
    z, a, p = _inputs(cfg, b=2)
    with torch.no_grad():
        out_z, out_p = pred(z, a, p)
        assert out_z.shape == z.shape and out_p is not None and out_p.shape == p.shape
        actions = torch.randn(2, cfg.history - 1 + 4, cfg.step_action_dim)
        roll_z, roll_p = pred.rollout(z, p, actions)
    assert roll_z.shape == (2, 4, cfg.num_patches, cfg.latent_dim) and roll_p is not None and roll_p.shape == (2, 4, 4)


def test_action_and_proprio_embeddings_are_tiled_onto_every_patch() -> None:
    torch.manual_seed(0)
    pred = DinoWmPredictor(_tiny())
    cfg = pred.config
    z, a, p = _inputs(cfg)
    tok = pred.tokens(z, a, p)
    d, e = cfg.latent_dim, cfg.action_emb_dim
    assert tok.shape == (2, 3, cfg.num_patches, cfg.width) and cfg.width == d + e + cfg.proprio_emb_dim
    assert torch.equal(tok[..., :d], z)
    act = pred.action_encoder(a)
    prop = pred.proprio_encoder(p) if pred.proprio_encoder is not None else None
    assert prop is not None
    for patch in range(cfg.num_patches):
        assert torch.equal(tok[:, :, patch, d:d + e], act)
        assert torch.equal(tok[:, :, patch, d + e:], prop)
    # Without proprio the token is latent + action only.
    bare = DinoWmPredictor(_tiny(proprio_dim=0))
    assert bare.tokens(z, a).shape[-1] == d + e and bare(z, a)[1] is None


def test_rollout_matches_step_by_step_prediction_and_keeps_only_the_last_h_frames() -> None:
    torch.manual_seed(0)
    pred = DinoWmPredictor(_tiny()).eval()
    cfg = pred.config
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 5, cfg.num_patches, cfg.latent_dim, generator=g)  # 5 observed frames > H = 3
    p = torch.randn(2, 5, cfg.proprio_dim, generator=g)
    acts = torch.randn(2, 4 + 3, cfg.step_action_dim, generator=g)
    with torch.no_grad():
        roll_z, roll_p = pred.rollout(z, p, acts)
        # Only the last H frames (and their actions) matter.
        short_z, short_p = pred.rollout(z[:, 2:], p[:, 2:], acts[:, 2:])
        assert torch.equal(roll_z, short_z) and roll_p is not None and short_p is not None
        assert torch.equal(roll_p, short_p)
        # Step 1 by hand: the last output of one forward pass over the window.
        z1, p1 = pred(z[:, 2:], acts[:, 2:5], p[:, 2:])
        assert p1 is not None
        torch.testing.assert_close(roll_z[:, 0], z1[:, -1])
        torch.testing.assert_close(roll_p[:, 0], p1[:, -1])
        # Step 2 by hand: the window slides, the prediction becomes an input.
        z2, _ = pred(torch.cat([z[:, 3:], z1[:, -1:]], 1), acts[:, 3:6], torch.cat([p[:, 3:], p1[:, -1:]], 1))
        torch.testing.assert_close(roll_z[:, 1], z2[:, -1])
    with pytest.raises(ValueError, match="actions_seq"):
        pred.rollout(z, p, acts[:, :4])


def test_predictor_overfits_a_tiny_linear_dynamics_dataset() -> None:
    """8 sequences of random latents moved by a known linear map plus an action term: teacher-forced
    training must drive the loss down by > 10x (the model can represent and learn frame-to-frame dynamics)."""
    torch.manual_seed(0)
    cfg = _tiny(frameskip=1, dropout=0.0, proprio_dim=2)
    g = torch.Generator().manual_seed(0)
    m = torch.linalg.qr(torch.randn(cfg.latent_dim, cfg.latent_dim, generator=g))[0] * 0.9
    b = torch.randn(cfg.action_dim, cfg.latent_dim, generator=g) * 0.5
    a = torch.rand(8, cfg.history, cfg.action_dim, generator=g) * 2 - 1
    frames = [torch.randn(8, cfg.num_patches, cfg.latent_dim, generator=g)]
    for t in range(cfg.history):
        frames.append(frames[-1] @ m + (a[:, t] @ b)[:, None, :])
    z = torch.stack(frames, 1)
    prop = z.mean(2)[..., :2]
    pred = DinoWmPredictor(cfg)
    opt = torch.optim.Adam(pred.parameters(), lr=3e-3)
    first = last = float("nan")
    for step in range(250):
        loss = teacher_forced_loss(pred, z, a, prop)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if step == 0 else first
        last = loss.item()
    assert first / last > 10.0, (first, last)


def test_loss_targets_are_detached() -> None:
    pred = torch.randn(3, 4, requires_grad=True)
    target = torch.randn(3, 4, requires_grad=True)
    latent_mse(pred, target).backward()
    assert target.grad is None and pred.grad is not None and pred.grad.abs().sum() > 0
    # The full loss: gradient reaches the inputs (frames 0..h-1) only through the prediction, never as a target.
    torch.manual_seed(0)
    model = DinoWmPredictor(_tiny(dropout=0.0)).eval()
    cfg = model.config
    z = torch.randn(1, 4, cfg.num_patches, cfg.latent_dim, requires_grad=True)
    p = torch.randn(1, 4, cfg.proprio_dim, requires_grad=True)
    teacher_forced_loss(model, z, torch.randn(1, 3, cfg.step_action_dim), p).backward()
    assert z.grad is not None and p.grad is not None
    assert torch.equal(z.grad[:, -1], torch.zeros_like(z.grad[:, -1]))  # the last frame is only ever a target
    assert torch.equal(p.grad[:, -1], torch.zeros_like(p.grad[:, -1]))


# ------------------------------------------------------------------------------- the WorldModel


def _encoder(cfg: PredictorConfig):
    """A stand-in for someone else's frozen backbone: average-pool the image to a grid, project each cell."""
    side = int(cfg.num_patches ** 0.5)
    proj = torch.randn(3, cfg.latent_dim, generator=torch.Generator().manual_seed(5))

    def encode(images: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(images, dtype=torch.float32).permute(0, 3, 1, 2) / 255.0
        cells = torch.nn.functional.adaptive_avg_pool2d(x, side).flatten(2).transpose(1, 2)  # (B, P, 3)
        return cells @ proj
    return encode


def test_world_model_encodes_predicts_and_scores_packed_frames() -> None:
    torch.manual_seed(0)
    cfg = _tiny(dropout=0.0)
    model = DinoWmModel(_encoder(cfg), DinoWmPredictor(cfg), DinoWmModelConfig(proprio_weight=0.5))
    images = np.random.default_rng(0).integers(0, 255, size=(2, 16, 16, 3), dtype=np.uint8)
    proprio = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], dtype=np.float32)
    frames = model.encode(images, proprio)
    assert frames.shape == (2, cfg.frame_dim) and frames.dtype == np.float32
    np.testing.assert_allclose(frames[:, -3:], proprio)
    patches, prop = unpack_frame(torch.as_tensor(frames), cfg.num_patches, cfg.latent_dim)
    assert prop is not None and torch.equal(pack_frame(patches, prop), torch.as_tensor(frames))

    pred = model.predict(frames, np.zeros((2, 4, cfg.step_action_dim), dtype=np.float32))
    assert pred.shape == (2, 4, cfg.frame_dim) and np.isfinite(pred).all()
    # History form: 2 frames need 1 past action plus the future ones.
    hist = np.stack([frames, frames], axis=1)
    assert model.predict(hist, np.zeros((2, 1 + 4, cfg.step_action_dim), np.float32)).shape == (2, 4, cfg.frame_dim)

    cost = model.cost(pred, pred[0, -1])
    assert cost.shape == (2,) and cost[0] == pytest.approx(0.0, abs=1e-7) and cost[1] > 0
    # The cost is the paper's: patch MSE + α·proprio MSE.
    goal = pred[0, -1].copy()
    goal[-3:] += 1.0
    assert model.cost(pred[:1], goal)[0] == pytest.approx(0.5 * 1.0, rel=1e-5)

    # The torch path the planners use agrees with the numpy protocol.
    state = LatentHistory.single(torch.as_tensor(frames[0]), cfg.step_action_dim)
    with torch.no_grad():
        torch_pred = model.rollout_latents(state, torch.zeros(1, 4, cfg.step_action_dim))
    np.testing.assert_allclose(torch_pred.numpy()[0], pred[0], rtol=1e-5, atol=1e-6)


def test_world_model_refuses_an_encoder_of_the_wrong_shape_and_missing_proprio() -> None:
    cfg = _tiny()
    images = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    wrong = DinoWmModel(lambda im: torch.zeros(len(im), cfg.num_patches + 1, cfg.latent_dim), DinoWmPredictor(cfg))
    with pytest.raises(FieldError, match="encoder output"):
        wrong.encode(images, np.zeros((2, 3)))
    right = DinoWmModel(lambda im: np.zeros((len(im), cfg.num_patches, cfg.latent_dim)), DinoWmPredictor(cfg))
    assert right.encode(images, np.zeros((2, 3))).shape == (2, cfg.frame_dim)  # numpy output accepted too
    with pytest.raises(FieldError, match="proprio"):
        right.encode(images)


def test_history_keeps_the_last_h_frames_and_the_actions_between_them() -> None:
    h = LatentHistory.single(torch.zeros(5), step_action_dim=2)
    for k in range(1, 5):
        h = h.append(torch.full((2,), float(k)), torch.full((5,), float(k)), max_frames=3)
        assert h.frames.shape[0] == min(k + 1, 3) and h.actions.shape[0] == h.frames.shape[0] - 1
    assert h.frames[:, 0].tolist() == [2.0, 3.0, 4.0]
    assert h.actions[:, 0].tolist() == [3.0, 4.0]  # the actions that led from frame 2 to 3 and 3 to 4
    with pytest.raises(ValueError, match="actions"):
        LatentHistory(torch.zeros(2, 5), torch.zeros(0, 2))


def test_env_actions_undo_normalisation_and_frameskip() -> None:
    cfg = _tiny()
    model = DinoWmModel(_encoder(cfg), DinoWmPredictor(cfg),
                        DinoWmModelConfig(action_mean=(1.0, -1.0), action_std=(2.0, 0.5)))
    plan = torch.tensor([[1.0, 0.0, -1.0, 1.0]])  # one model step = 2 env actions of 2 dims
    np.testing.assert_allclose(model.env_actions(plan), [[3.0, -1.0], [-1.0, -0.5]])


@pytest.mark.parametrize("bad", [dict(depth=0), dict(heads=1.5), dict(dropout=1.0), dict(proprio_dim=-1),
                                 dict(num_patches=True)])
def test_config_rejects_bad_values_by_name(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        PredictorConfig.cpu(**bad)
