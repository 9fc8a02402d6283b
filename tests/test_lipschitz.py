"""Tests of :mod:`cssl.lipschitz`: operator norms, certified upper bounds of networks, pair lower bounds."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cssl import lipschitz as lip
from cssl.models import MLP, SmallCNN


def _float64(module):
    return module.to(torch.float64)


# ------------------------------------------------------------------ linear_matrix / operator_norm
def test_linear_matrix_of_a_linear_layer_is_its_weight():
    torch.manual_seed(0)
    layer = _float64(nn.Linear(5, 3, bias=False))
    a = lip.linear_matrix(layer, (5,))
    assert torch.allclose(a, layer.weight.detach(), atol=1e-15)


def test_operator_norm_of_a_matrix_equals_numpy_spectral_norm():
    rng = np.random.default_rng(0)
    for shape in [(3, 7), (9, 4), (6, 6)]:
        w = rng.normal(size=shape)
        oracle = np.linalg.norm(w, 2)
        fn = lambda x, w=torch.as_tensor(w): x @ w.T  # noqa: E731
        for method in ("exact", "power"):
            assert lip.operator_norm(fn, (shape[1],), method=method) == pytest.approx(oracle, rel=1e-9)


def test_power_iteration_converges_on_a_conv_layer_to_the_explicit_matrix_norm():
    torch.manual_seed(1)
    conv = _float64(nn.Conv2d(2, 3, 3, padding=1, bias=False))
    a = lip.linear_matrix(conv, (2, 4, 4))
    assert a.shape == (3 * 16, 2 * 16)
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)  # the matrix reproduces the layer
    assert torch.allclose(a @ x.flatten(), conv(x).flatten(), atol=1e-12)
    oracle = np.linalg.norm(a.numpy(), 2)
    power = lip.operator_norm(conv, (2, 4, 4), method="power", iters=2000, tol=1e-14)
    assert power <= oracle * (1 + 1e-12)  # power iteration approaches from below
    assert power == pytest.approx(oracle, rel=1e-4)
    assert lip.operator_norm(conv, (2, 4, 4), method="exact") == pytest.approx(oracle, rel=1e-10)


def test_conv_norm_depends_on_the_input_shape():
    torch.manual_seed(2)
    conv = _float64(nn.Conv2d(1, 1, 3, padding=1, bias=False))
    small = lip.operator_norm(conv, (1, 2, 2), method="exact")
    large = lip.operator_norm(conv, (1, 8, 8), method="exact")
    assert small <= large + 1e-12  # the small grid is a compression of the large one


def test_operator_norm_rejects_bad_input():
    with pytest.raises(ValueError, match="not linear"):
        lip.operator_norm(lambda x: x + 1.0, (3,))
    with pytest.raises(ValueError, match="method"):
        lip.operator_norm(lambda x: x, (3,), method="svd")
    with pytest.raises(TypeError, match="input_shape"):
        lip.operator_norm(lambda x: x, "3")
    with pytest.raises(ValueError):
        lip.operator_norm(lambda x: x, (0,))
    with pytest.raises(TypeError, match="callable"):
        lip.operator_norm(3.0, (3,))


# ------------------------------------------------------------------ diagonal pieces
def test_batchnorm_scale_matches_eval_mode_batchnorm():
    bn = nn.BatchNorm2d(4)
    bn.running_var.copy_(torch.tensor([0.5, 2.0, 1.0, 4.0]))
    bn.running_mean.copy_(torch.tensor([1.0, -1.0, 0.0, 2.0]))
    bn.weight.data.copy_(torch.tensor([1.0, -3.0, 0.5, 2.0]))
    bn.eval()
    x, y = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    scale = lip.batchnorm_scale(bn)
    diff = (bn(x) - bn(y)).double()
    assert torch.allclose(diff, (x - y).double() * scale.view(1, -1, 1, 1), atol=1e-5)
    with pytest.raises(TypeError):
        lip.batchnorm_scale(nn.ReLU())
    with pytest.raises(ValueError, match="running statistics"):
        lip.batchnorm_scale(nn.BatchNorm2d(2, track_running_stats=False))


def test_channel_scale_recovers_one_over_std_and_rejects_non_diagonal_maps():
    m, s = torch.tensor([0.1, 0.5, 0.9]).view(1, 3, 1, 1), torch.tensor([0.2, 0.5, 4.0]).view(1, 3, 1, 1)
    scale = lip.channel_scale(lambda x: (x - m) / s, (3, 4, 4))
    assert torch.allclose(scale, 1 / s.flatten().double(), rtol=1e-6)
    with pytest.raises(ValueError, match="per-channel affine"):
        lip.channel_scale(lambda x: x.flip(-1) * 2.0, (3, 4, 4))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        lip.channel_scale(lambda x: x, (3, 4))


# ------------------------------------------------------------------ network bounds
def test_network_bound_of_a_linear_map_is_its_spectral_norm():
    torch.manual_seed(3)
    layer = nn.Linear(6, 4)
    oracle = np.linalg.norm(layer.weight.detach().double().numpy(), 2)
    for merge in (True, False):
        bound = lip.network_lipschitz_upper(layer, (6,), merge=merge)
        assert bound.upper == pytest.approx(oracle, rel=1e-9)
    seq = nn.Sequential(nn.Linear(6, 5, bias=False), nn.Linear(5, 4, bias=False))  # merged: exact norm of W2 W1
    w = (seq[1].weight.detach().double() @ seq[0].weight.detach().double()).numpy()
    merged = lip.network_lipschitz_upper(seq, (6,), merge=True).upper
    plain = lip.network_lipschitz_upper(seq, (6,), merge=False).upper
    assert merged == pytest.approx(np.linalg.norm(w, 2), rel=1e-9)
    assert merged <= plain * (1 + 1e-12)


def _random_smallcnn(seed=0):
    torch.manual_seed(seed)
    net = SmallCNN(3, width=4)
    with torch.no_grad():  # non-trivial BatchNorm statistics and affine parameters
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.3, 3.0)
                m.running_mean.normal_()
                m.weight.uniform_(-2.0, 2.0)
                m.bias.normal_()
    return net.eval()


def test_network_bound_on_a_smallcnn_is_above_every_pair_ratio_and_merge_is_tighter():
    net = _random_smallcnn()
    scale = torch.tensor([2.0, 5.0, 3.0], dtype=torch.float64)
    transform = lambda x: x * scale.float().view(1, 3, 1, 1)  # noqa: E731
    merged = lip.network_lipschitz_upper(net, (3, 8, 8), input_scale=scale, merge=True)
    plain = lip.network_lipschitz_upper(net, (3, 8, 8), input_scale=scale, merge=False)
    assert merged.upper <= plain.upper * (1 + 1e-9)
    names = " ".join(f.name for f in plain.layers)
    assert "input normalisation" in names and "global average pool" in names and "BatchNorm2d" in names
    assert any(f.norm == pytest.approx(0.5) for f in plain.layers)  # GAP over 2x2 positions: 1 / sqrt(4)
    assert any(f.norm == pytest.approx(5.0) for f in plain.layers)  # 1 / min s
    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, 3, 8, 8, generator=g)
    x = torch.cat([x, (x[:100] + 1e-2 * torch.randn(100, 3, 8, 8, generator=g)).clamp(0, 1)])
    with torch.no_grad():
        y = net(transform(x)).double()
    lower = lip.pairwise_lipschitz_lower(x.double(), y)
    assert 0 < lower.value <= merged.upper
    refined = lip.refine_lipschitz_lower(lambda z: net(transform(z)), x[:4], x[300:304], steps=8)
    assert refined.value <= merged.upper
    assert bool((refined.ratio >= refined.start_ratio * (1 - 1e-5)).all())  # the best seen never gets worse


def test_network_bound_is_exact_for_a_single_conv_and_handles_mlp():
    torch.manual_seed(4)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    a = lip.linear_matrix(lambda x: F.conv2d(x, conv.weight.detach().double(), padding=1), (2, 4, 4))
    assert lip.network_lipschitz_upper(conv, (2, 4, 4)).upper == pytest.approx(np.linalg.norm(a.numpy(), 2), rel=1e-9)
    mlp = MLP(5, 7, 3, num_layers=2, batch_norm=True).eval()
    bound = lip.network_lipschitz_upper(mlp, (5,))
    x = torch.randn(200, 5)
    with torch.no_grad():
        y = mlp(x).double()
    assert lip.pairwise_lipschitz_lower(x.double(), y).value <= bound.upper


def test_network_bound_rejects_unsupported_pieces():
    with pytest.raises(TypeError, match="supports"):
        lip.network_lipschitz_upper(nn.GRU(3, 3), (3,))
    with pytest.raises(ValueError, match="overlapping"):
        lip.network_lipschitz_upper(nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(3, stride=1)), (1, 6, 6))
    with pytest.raises(TypeError, match="no linear part"):
        lip.network_lipschitz_upper(nn.Sequential(nn.Linear(3, 3), nn.Tanh()), (3,))
    with pytest.raises(ValueError, match="channels"):
        lip.network_lipschitz_upper(SmallCNN(3, width=2), (3, 4, 4), input_scale=[1.0, 2.0])
    with pytest.raises(ValueError, match="method"):
        lip.network_lipschitz_upper(nn.Linear(2, 2), (2,), method="fft")


# ------------------------------------------------------------------ the output normalisation
def test_normalised_bound_holds_for_every_pair_of_the_set():
    torch.manual_seed(5)
    w = torch.randn(3, 4, dtype=torch.float64)
    x = torch.randn(400, 4, dtype=torch.float64)
    g = x @ w.T
    f = 2.0 * g / g.norm(dim=1, keepdim=True)
    upper = lip.normalised_lipschitz_upper(float(torch.linalg.matrix_norm(w, 2)), g.norm(dim=1), r=2.0)
    assert lip.pairwise_lipschitz_lower(x, f).value <= upper
    with pytest.raises(ValueError, match="undefined"):
        lip.normalised_lipschitz_upper(1.0, [1.0, 0.0])
    with pytest.raises(ValueError):
        lip.normalised_lipschitz_upper(0.0, [1.0])


# ------------------------------------------------------------------ pair lower bounds
def test_pairwise_lower_is_the_brute_force_maximum():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(40, 3, generator=g, dtype=torch.float64)
    y = torch.tanh(3 * x[:, :2])
    best = max((float((y[i] - y[j]).norm() / (x[i] - x[j]).norm()), i, j) for i in range(40) for j in range(i + 1, 40))
    pb = lip.pairwise_lipschitz_lower(x, y, block=7)
    assert pb.value == pytest.approx(best[0], rel=1e-12)
    assert (pb.i, pb.j) == best[1:]
    assert pb.n_pairs == 40 * 39 // 2


def test_pairwise_lower_of_a_linear_map_reaches_its_norm_on_the_top_singular_direction():
    w = torch.tensor([[3.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert lip.pairwise_lipschitz_lower(x, x @ w.T).value == pytest.approx(3.0)


def test_pairwise_lower_skips_near_duplicates_and_rejects_bad_input():
    x = torch.tensor([[0.0], [1e-9], [1.0]], dtype=torch.float64)
    y = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)
    assert lip.pairwise_lipschitz_lower(x, y, min_distance=1e-6).value == pytest.approx(2.0 - 1e-9, rel=1e-6)
    with pytest.raises(ValueError, match="rows"):
        lip.pairwise_lipschitz_lower(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="two points"):
        lip.pairwise_lipschitz_lower(torch.zeros(1, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="min_distance"):
        lip.pairwise_lipschitz_lower(torch.zeros(3, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="NaN"):
        lip.pairwise_lipschitz_lower(torch.tensor([[0.0], [float("nan")]]), torch.zeros(2, 1))


def test_refine_finds_the_steepest_direction_of_a_linear_map_and_respects_the_box():
    w = torch.tensor([[4.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    fn = lambda z: z @ w.T  # noqa: E731
    g = torch.Generator().manual_seed(7)
    a = torch.rand(6, 3, generator=g)
    b = (a + 0.1 * torch.rand(6, 3, generator=g)).clamp(0, 1)
    out = lip.refine_lipschitz_lower(fn, a, b, steps=200, lr=0.02, min_distance=0.01)
    assert out.value <= 4.0 + 1e-5
    assert out.value > 3.9
    assert float(out.a.min()) >= 0 and float(out.b.max()) <= 1
    assert bool(((out.a - out.b).norm(dim=1) >= 0.01 - 1e-6).all())
    with pytest.raises(ValueError, match="same shape"):
        lip.refine_lipschitz_lower(fn, a, b[:3])
    with pytest.raises(ValueError, match="box"):
        lip.refine_lipschitz_lower(fn, a, b, box=(1.0, 0.0))
    with pytest.raises(TypeError, match="callable"):
        lip.refine_lipschitz_lower(None, a, b)
