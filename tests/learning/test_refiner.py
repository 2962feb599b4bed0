"""Keypoint attention refiner: shapes, masking, symmetries, checkpoints, quantization, learning."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from medpose.data import KeypointSequence
from medpose.errors import InputError
from medpose.learning.checkpoint import load_refiner, save_refiner
from medpose.learning.inference import refine
from medpose.learning.quantize import quantize_refiner
from medpose.learning.refiner import (
    KeypointAttention,
    KeypointRefiner,
    RefinerConfig,
    normalise_windows,
    refine_positions,
    window_starts,
)
from medpose.learning.training import make_refiner_data, train_refiner

LEGS = ("hip_l", "hip_r", "knee_l", "knee_r", "ankle_l", "ankle_r")


def _model(seed: int = 0, k: int = 6, window: int = 16) -> KeypointRefiner:
    torch.manual_seed(seed)
    names = LEGS if k == 6 else tuple(f"kp{i}" for i in range(k))
    m = KeypointRefiner(
        RefinerConfig(keypoints=names, d_model=16, heads=2, layers=1, window=window, patch=2)
    )
    torch.nn.init.normal_(m.head.weight, std=0.3)  # a non-trivial correction (default init is 0)
    return m.eval()


def _inputs(b: int = 2, t: int = 10, k: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, k, 3, generator=g)
    observed = torch.rand(b, t, k, generator=g) > 0.2
    times = torch.arange(t, dtype=torch.float32)[None].expand(b, t) / 30.0
    return x, observed, times


def test_forward_shapes_and_bad_shapes() -> None:
    m = _model()
    x, observed, times = _inputs()
    assert m(x, observed, times).shape == (2, 10, 6, 3)
    with pytest.raises(InputError, match="multiple of patch"):
        m(x[:, :9], observed[:, :9], times[:, :9])
    with pytest.raises(InputError, match="x must be"):
        m(x[:, :, :5], observed[:, :, :5], times)
    with pytest.raises(InputError, match="observed"):
        m(x, observed[:, :5], times)


def test_attention_projects_to_hidden_size_not_keypoints() -> None:
    att = KeypointAttention(d_model=16, heads=4)
    for lin in (att.query, att.key, att.value, att.out):
        assert lin.weight.shape == (16, 16)
    y = att(torch.randn(3, 7, 16))  # 7 tokens: output keeps the hidden size
    assert y.shape == (3, 7, 16)


def test_missing_values_are_ignored() -> None:
    m = _model()
    x, observed, times = _inputs()
    junk = torch.where(observed[..., None], x, torch.full_like(x, 1e4))
    torch.testing.assert_close(m(x, observed, times), m(junk, observed, times))


def test_keypoint_permutation_equivariance() -> None:
    """Permuting the keypoints together with their identity embeddings permutes the output;
    permuting the data alone does not (the network knows which keypoint is which)."""
    m = _model()
    x, observed, times = _inputs()
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    y = m(x, observed, times)
    y_perm = m(x[:, :, perm], observed[:, :, perm], times, keypoint_ids=perm)
    torch.testing.assert_close(y_perm, y[:, :, perm], atol=1e-5, rtol=1e-5)
    y_data_only = m(x[:, :, perm], observed[:, :, perm], times)
    assert not torch.allclose(y_data_only, y[:, :, perm], atol=1e-3)


def test_normalise_windows_centre_and_scale() -> None:
    pos = torch.tensor([[[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [4.0, 0.0, 0.0]]]]) * 100
    pos = pos.expand(1, 3, 3, 3).clone()
    pos[0, 1, 2] = float("nan")
    x, observed, centre, scale = normalise_windows(pos)
    assert observed.sum() == 8 and float(x[0, 1, 2].abs().sum()) == 0.0
    torch.testing.assert_close(centre.reshape(3), torch.tensor([200.0, 0.0, 0.0]))
    assert float(scale) == pytest.approx(200.0)


def test_refine_positions_translation_and_scale_equivariant() -> None:
    m = _model()
    rng = np.random.default_rng(1)
    pos = rng.normal(0, 300, size=(40, 6, 3)).astype(np.float32)
    pos[5:9, 2] = np.nan
    out = refine_positions(m, pos, 30.0)
    assert out.shape == (40, 6, 3) and np.isfinite(out).all()  # the gap is filled
    shift = np.array([1000.0, -2000.0, 500.0], np.float32)
    np.testing.assert_allclose(refine_positions(m, pos + shift, 30.0), out + shift, atol=0.05)
    np.testing.assert_allclose(refine_positions(m, 2 * pos, 30.0), 2 * out, rtol=1e-4, atol=0.05)
    never = pos.copy()
    never[:, 4] = np.nan  # a keypoint never observed stays missing
    assert np.isnan(refine_positions(m, never, 30.0)[:, 4]).all()


def test_window_starts_cover_every_frame() -> None:
    assert window_starts(10, 16) == [0]
    starts = window_starts(100, 32)
    assert starts[0] == 0 and starts[-1] == 100 - 32
    covered = np.zeros(100, bool)
    for s in starts:
        covered[s : s + 32] = True
    assert covered.all()


def test_config_checks() -> None:
    with pytest.raises(InputError, match="unique"):
        RefinerConfig(keypoints=("a", "a"))
    with pytest.raises(InputError, match="multiple of patch"):
        RefinerConfig(keypoints=("a", "b"), window=30, patch=4)
    with pytest.raises(InputError, match="divisible"):
        RefinerConfig(keypoints=("a", "b"), d_model=30, heads=4)
    with pytest.raises(InputError, match="fields"):
        RefinerConfig.from_dict({"keypoints": ["a", "b"], "d_model": 8})


def test_checkpoint_round_trip(tmp_path) -> None:
    m = _model(seed=3)
    path = save_refiner(m, tmp_path / "r.safetensors", training={"steps": 1})
    loaded = load_refiner(path, keypoints=LEGS)
    assert loaded.config == m.config and loaded.training_record == {"steps": 1}
    x, observed, times = _inputs()
    torch.testing.assert_close(loaded(x, observed, times), m(x, observed, times))
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["format"] == "medpose-refiner" and doc["config"]["keypoints"] == list(LEGS)


def test_checkpoint_refused_on_mismatch(tmp_path) -> None:
    path = save_refiner(_model(), tmp_path / "r.safetensors")
    other = ("hip_l", "hip_r", "knee_l", "knee_r", "ankle_l", "toe_r")
    with pytest.raises(InputError, match=r"has \['ankle_r'\] not expected, lacks \['toe_r'\]"):
        load_refiner(path, keypoints=other)
    with pytest.raises(InputError, match="another order"):
        load_refiner(path, keypoints=LEGS[::-1])
    # config edited after saving: the copy inside the weights no longer matches
    cfg = tmp_path / "r.json"
    doc = json.loads(cfg.read_text())
    doc["config"]["d_model"] = 32
    cfg.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="config stored in the weights differs"):
        load_refiner(path)
    # a tensor renamed (metadata kept): the names no longer match the architecture
    save_refiner(_model(), path)
    tensors = load_file(str(path))
    meta = {
        "format": "medpose-refiner",
        "config": json.dumps(_model().config.to_dict(), sort_keys=True),
    }
    tensors["head.w"] = tensors.pop("head.weight")
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(InputError, match=r"missing \['head.weight'\], unexpected \['head.w'\]"):
        load_refiner(path)
    (tmp_path / "r.json").unlink()
    with pytest.raises(InputError, match="config not found"):
        load_refiner(path)


def test_refine_sequence_keeps_other_keypoints_and_names_missing_ones() -> None:
    m = _model()
    rng = np.random.default_rng(2)
    names = (*LEGS, "nose")
    pos = rng.normal(0, 300, size=(20, 7, 3))
    seq = KeypointSequence(pos, names, 60.0)
    out = refine(seq, m)
    assert out.names == names and out.rate == 60.0
    np.testing.assert_array_equal(out["nose"], seq["nose"])
    assert not np.allclose(out["knee_l"], seq["knee_l"])
    with pytest.raises(InputError, match=r"lacks keypoints \['ankle_r'\]"):
        refine(seq.select([n for n in names if n != "ankle_r"]), m)


def test_quantized_agrees_with_float() -> None:
    """Tolerance: the int8 model's output differs from the float model's by less than 5 % of
    the correction the float model makes (RMS over all samples)."""
    m = _model(seed=4, k=6, window=16)
    q = quantize_refiner(m)
    assert not any(type(mod) is torch.nn.Linear for mod in q.modules())
    rng = np.random.default_rng(3)
    pos = rng.normal(0, 300, size=(48, 6, 3)).astype(np.float32)
    f, qq = refine_positions(m, pos, 30.0), refine_positions(q, pos, 30.0)
    correction = np.sqrt(np.mean(np.sum((f - pos) ** 2, -1)))
    diff = np.sqrt(np.mean(np.sum((qq - f) ** 2, -1)))
    assert correction > 1.0 and diff < 0.05 * correction, (diff, correction)


def _rmse(est, truth, mask):
    return float(np.sqrt(np.mean(np.sum((est - truth) ** 2, -1)[mask])))


@pytest.fixture
def one_thread():
    """Train on one thread: tiny tensors gain nothing from more, and lose to contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_cpu_training_learns(one_thread) -> None:
    """A tiny refiner trained on the CPU on synthetic squats and gait (markerless jitter of
    20 mm per axis, dropouts and occlusion gaps; no constant bias, which no method can see, and
    no swaps or outliers, which the clean-up removes before the refiner) beats, on held-back
    patients and on the samples the markerless system reported, both the noisy input and the
    cleaned input it starts from by a clear margin."""
    opts = {"bias_mm": 0.0, "sigma_mm": 20.0, "outlier_rate": 0.0, "swap_rate": 0.0}
    kw = {"keypoints": LEGS, "exercises": ("squat", "gait"), "rates": (30.0,), "min_frames": 32}
    train = make_refiner_data(24, seed=0, markerless_options=opts, **kw)
    test = make_refiner_data(6, seed=99, markerless_options=opts, **kw)
    cfg = RefinerConfig(keypoints=LEGS, d_model=32, heads=4, layers=1, window=32, patch=4)
    model, log = train_refiner(train, cfg, steps=300, batch_size=16, lr=3e-3, progress=False)
    assert len(log.losses) == 300 and np.isfinite(log.losses).all()
    noisy, cleaned, refined = [], [], []
    for n, c, t, r in zip(test.noisy, test.inputs, test.truth, test.rates):
        seen = np.isfinite(n).all(-1) & np.isfinite(c).all(-1)
        noisy.append(_rmse(n, t, seen))
        cleaned.append(_rmse(c, t, seen))
        refined.append(_rmse(refine_positions(model, c, r), t, seen))
    assert np.mean(refined) < 0.85 * np.mean(noisy), (refined, noisy)
    assert np.mean(refined) < 0.85 * np.mean(cleaned), (refined, cleaned)
    # deterministic for a seed
    again, _ = train_refiner(train, cfg, steps=3, batch_size=4, progress=False)
    twice, _ = train_refiner(train, cfg, steps=3, batch_size=4, progress=False)
    for a, b in zip(again.state_dict().values(), twice.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_interpolate_missing_is_linear_between_observations() -> None:
    from medpose.learning.refiner import interpolate_missing

    t = torch.arange(7, dtype=torch.float32)
    x = t.reshape(1, 7, 1, 1).expand(1, 7, 1, 3).clone()
    observed = torch.tensor([0, 1, 0, 0, 1, 0, 0], dtype=torch.bool).reshape(1, 7, 1)
    x[~observed] = float("nan")
    out = interpolate_missing(x, observed)[0, :, 0, 0]
    torch.testing.assert_close(out, torch.tensor([1.0, 1, 2, 3, 4, 4, 4]))
    assert float(interpolate_missing(x, torch.zeros_like(observed)).abs().max()) == 0.0


def test_shipped_refiner_loads_and_improves_on_markerless_input() -> None:
    """The packaged model works out of the box: on held-back synthetic patients (a seed not used
    in training) refine() is closer to the truth than the markerless observation it was given,
    on the samples that observation reported."""
    from medpose.learning.checkpoint import default_refiner
    from medpose.learning.training import DEFAULT_KEYPOINTS

    model = default_refiner()
    assert model.config.keypoints == DEFAULT_KEYPOINTS
    data = make_refiner_data(4, seed=777_001)
    err_in, err_out = [], []
    for noisy, truth, rate in zip(data.noisy, data.truth, data.rates):
        seq = KeypointSequence(noisy, data.keypoints, rate)
        out = refine(seq, model)
        seen = np.isfinite(noisy).all(-1)
        assert np.isfinite(out.positions).all(-1).mean() > seen.mean()  # gaps filled
        err_in.append(np.sum((noisy - truth) ** 2, -1)[seen])
        err_out.append(np.sum((out.positions - truth) ** 2, -1)[seen])
    rmse_in, rmse_out = (np.sqrt(np.mean(np.concatenate(e))) for e in (err_in, err_out))
    assert rmse_out < 0.9 * rmse_in, (rmse_out, rmse_in)
