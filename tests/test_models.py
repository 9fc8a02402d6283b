"""Backbones, heads and the four methods of cssl.models, against the authors' recipe and hand formulas."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cssl import losses
from cssl.models import (MLP, BarlowTwins, MoCo, SimCLR, SimSiam, SmallCNN, SphereEncoder, SplitBatchNorm2d,
                         barlow_twins_head, build_backbone, build_method, resnet18_cifar, simclr_head,
                         simsiam_prediction_head, simsiam_projection_head)


def _linears(m):
    return [(l.in_features, l.out_features) for l in m.modules() if isinstance(l, nn.Linear)]


def _bns(m):
    return [b.num_features for b in m.modules() if isinstance(b, nn.BatchNorm1d)]


def test_small_cnn_shapes_and_errors():
    torch.manual_seed(0)
    m = SmallCNN(3, width=16)
    assert m.feature_dim == 64
    assert m(torch.rand(5, 3, 16, 16)).shape == (5, 64)
    g = SmallCNN(1, width=8, out_dim=10)
    assert g.feature_dim == 10 and g(torch.rand(4, 1, 8, 8)).shape == (4, 10)
    with pytest.raises(ValueError, match="expects"):
        m(torch.rand(5, 1, 16, 16))
    with pytest.raises(ValueError, match="width"):
        SmallCNN(3, width=0)


def test_small_cnn_channels_last_matches_contiguous():
    torch.manual_seed(0)
    m = SmallCNN(3, 8).eval()
    x = torch.rand(4, 3, 16, 16)
    ref = m(x)
    m_cl = m.to(memory_format=torch.channels_last)
    assert torch.allclose(m_cl(x.contiguous(memory_format=torch.channels_last)), ref, atol=1e-5)


def test_resnet18_cifar_stem_and_size():
    m = resnet18_cifar()
    assert m.feature_dim == 512
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1)
    assert not any(isinstance(x, nn.MaxPool2d) for x in m.modules())
    # the standard CIFAR ResNet-18 without its classifier has 11,168,832 parameters
    assert sum(p.numel() for p in m.parameters()) == 11_168_832
    small = resnet18_cifar(width=4)
    assert small(torch.rand(2, 3, 16, 16)).shape == (2, 32)


def test_heads_follow_authors_sizes_at_512():
    assert _linears(simclr_head(512)) == [(512, 512), (512, 128)] and _bns(simclr_head(512)) == []
    assert _linears(simsiam_projection_head(512)) == [(512, 2048), (2048, 2048)]
    assert _bns(simsiam_projection_head(512)) == [2048, 2048]
    assert _linears(simsiam_prediction_head(512)) == [(2048, 512), (512, 2048)]
    assert _bns(simsiam_prediction_head(512)) == [512]
    assert _linears(barlow_twins_head(512)) == [(512, 2048), (2048, 2048), (2048, 2048)]
    assert _bns(barlow_twins_head(512)) == [2048, 2048, 2048]
    # proportionally small for a 64-d backbone
    assert _linears(simclr_head(64)) == [(64, 64), (64, 16)]
    assert _linears(barlow_twins_head(64)) == [(64, 256), (256, 256), (256, 256)]


def test_mlp_flattens_and_validates():
    m = MLP(12, 7, 3, num_layers=3)
    assert m(torch.rand(4, 3, 2, 2)).shape == (4, 3)
    with pytest.raises(ValueError, match="12 features"):
        m(torch.rand(4, 5))


def test_sphere_encoder_radius():
    torch.manual_seed(0)
    f = SphereEncoder(MLP(5, 8, 4), radius=3.0)
    z = f(torch.randn(10, 5))
    assert torch.allclose(z.norm(dim=1), torch.full((10,), 3.0), atol=1e-5)
    with pytest.raises(ValueError, match="radius"):
        SphereEncoder(MLP(5, 8, 4), radius=0.0)


def _views(n=8, c=3, s=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, s, s, generator=g), torch.rand(n, c, s, s, generator=g)


def test_simclr_loss_is_nt_xent_of_projections():
    torch.manual_seed(0)
    m = SimCLR(SmallCNN(3, 4)).train()
    x1, x2 = _views()
    got = m(x1, x2)
    torch.manual_seed(0)
    m2 = SimCLR(SmallCNN(3, 4)).train()
    z1, z2 = m2.projection(m2.encoder(x1)), m2.projection(m2.encoder(x2))
    assert torch.allclose(got, losses.nt_xent(z1, z2, 0.5), atol=1e-6)
    assert m.loss(x1, x2).ndim == 0


def test_barlow_twins_loss_is_cross_correlation():
    torch.manual_seed(1)
    m = BarlowTwins(SmallCNN(3, 4), lam=0.1)
    x1, x2 = _views()
    got = m(x1, x2)
    torch.manual_seed(1)
    m2 = BarlowTwins(SmallCNN(3, 4), lam=0.1)
    z1, z2 = m2.projection(m2.encoder(x1)), m2.projection(m2.encoder(x2))
    assert torch.allclose(got, losses.cross_correlation(z1, z2, lam=0.1), rtol=1e-5)


def test_simsiam_stop_gradient_halves_the_symmetric_gradient():
    """With an identity predictor, -(cos(z1, sg z2) + cos(z2, sg z1))/2 has half the gradient of -cos(z1, z2)."""
    torch.manual_seed(2)
    m = SimSiam(MLP(6, 8, 4))
    m.predictor = nn.Identity()
    x1, x2 = torch.randn(10, 6), torch.randn(10, 6)
    m(x1, x2).backward()
    g_sg = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    z1, z2 = m.projection(m.encoder(x1)), m.projection(m.encoder(x2))
    (-F.cosine_similarity(z1, z2, dim=1).mean()).backward()
    for a, p in zip(g_sg, m.parameters()):
        assert torch.allclose(a, 0.5 * p.grad, atol=1e-6)


def test_moco_loss_queue_and_momentum_update():
    torch.manual_seed(3)
    m = MoCo(MLP(6, 8, 8), queue_size=16, momentum=0.9, temperature=0.2)
    x1, x2 = torch.randn(4, 6), torch.randn(4, 6)
    m.eval()  # no BN here; eval: no enqueue
    queue = m.queue.clone()
    q1 = F.normalize(m.projection(m.encoder(x1)), dim=1)
    q2 = F.normalize(m.projection(m.encoder(x2)), dim=1)
    k1 = F.normalize(m.momentum_projection(m.momentum_encoder(x1)), dim=1)
    k2 = F.normalize(m.momentum_projection(m.momentum_encoder(x2)), dim=1)

    def ce(q, k):
        logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], 1) / 0.2
        return -torch.log_softmax(logits, 1)[:, 0].mean()

    expected = 0.5 * (ce(q1, k2) + ce(q2, k1))
    assert torch.allclose(m(x1, x2), expected, atol=1e-5)
    assert torch.equal(m.queue, queue)
    m.train()
    m(x1, x2)
    assert int(m.queue_ptr) == 8
    assert torch.allclose(m.queue[:8], torch.cat([k2, k1]), atol=1e-6)
    assert torch.equal(m.queue[8:], queue[8:])
    # momentum update: theta_k <- m theta_k + (1 - m) theta_q
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(1.0)
    before = [p.clone() for p in m.momentum_encoder.parameters()]
    m.on_step_end()
    for pk, b, pq in zip(m.momentum_encoder.parameters(), before, m.encoder.parameters()):
        assert torch.allclose(pk, 0.9 * b + 0.1 * pq)
    assert all(not p.requires_grad for p in m.momentum_encoder.parameters())
    assert len(m.trainable_parameters()) == len(list(m.encoder.parameters())) + len(list(m.projection.parameters()))


def test_split_batchnorm_normalises_strided_subbatches():
    torch.manual_seed(4)
    bn = SplitBatchNorm2d(3, num_splits=2)
    x = torch.randn(8, 3, 4, 4) * 2 + 1
    y = bn(x)
    ref = nn.BatchNorm2d(3)
    for b in range(2):  # reshape (N, C) -> (N/s, s*C) puts sample n in split n mod s
        assert torch.allclose(y[b::2], ref(x[b::2]), atol=1e-5)
    bn.eval()
    mean = torch.stack([x[b::2].mean(dim=(0, 2, 3)) for b in range(2)]).mean(0) * 0.1
    assert torch.allclose(bn.running_mean[:3], mean, atol=1e-5)
    with pytest.raises(ValueError, match="divisible"):
        bn.train()(torch.randn(3, 3, 4, 4))


def test_build_method_and_errors():
    torch.manual_seed(0)
    a = build_method("simclr", build_backbone("smallcnn", width=4))
    torch.manual_seed(0)
    b = build_method("simclr", build_backbone("smallcnn", width=4))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError, match="unknown method"):
        build_method("byol", SmallCNN())
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("vit")
    with pytest.raises(ValueError, match="same shape"):
        a(torch.rand(4, 3, 8, 8), torch.rand(5, 3, 8, 8))
    with pytest.raises(ValueError, match="feature_dim"):
        SimCLR(nn.Linear(3, 3))
    m = build_method("moco", build_backbone("smallcnn", width=4, split_bn=2), queue_size=32)
    assert any(isinstance(x, SplitBatchNorm2d) for x in m.encoder.modules())
    assert torch.isfinite(m(*_views(n=4)))
