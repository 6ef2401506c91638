"""Network construction: presets, the paper's skip connections, residual validation."""

from __future__ import annotations

import pytest
import torch

from crbnn.learn.nets import PRESETS, EstimatorNet, build_from_architecture, build_network, count_weights, mirror_pairs

torch.set_num_threads(1)


def test_paper_preset_matches_public_code() -> None:
    net = build_network({"preset": "paper"}, n_inputs=26, n_outputs=3)
    assert net.widths == [26, 128, 256, 512, 1024, 768, 640, 512, 384, 256, 192, 128, 26, 10, 6, 3]
    # MRF-CRBLoss models/CRB-paper.py: s512 -> fc7, s256 -> fc9, s128 -> fc11, proj -> fc12
    assert net.residual_pairs == [(3, 7), (2, 9), (1, 11), (0, 12)]
    assert 2.6e6 < count_weights(net) < 2.8e6


def test_forward_shapes_and_output_scaling() -> None:
    net = build_network({"preset": "default"}, 8, 3, out_offset=[1.0, 2.0, 3.0], out_scale=[0.0, 0.0, 0.0])
    out = net.eval()(torch.randn(5, 8))
    assert out.shape == (5, 3)
    assert torch.equal(out, torch.tensor([[1.0, 2.0, 3.0]]).expand(5, 3))


def test_skip_is_added_before_batchnorm() -> None:
    torch.manual_seed(0)
    plain = EstimatorNet([4, 8, 16, 8, 4, 2], residual="none", batchnorm=False)
    skip = EstimatorNet([4, 8, 16, 8, 4, 2], residual="mirror", batchnorm=False)
    skip.load_state_dict(plain.state_dict())
    x = torch.randn(3, 4)
    assert skip.residual_pairs == [(1, 3), (0, 4)] == mirror_pairs(skip.widths)
    assert not torch.allclose(plain(x), skip(x))


def test_rebuild_and_invalid() -> None:
    for name in PRESETS:
        net = build_network({"preset": name}, 26, 3)
        assert build_from_architecture(net.architecture()).architecture() == net.architecture()
    with pytest.raises(ValueError, match="invalid residual pair"):
        EstimatorNet([4, 8, 6, 2], residual=[(1, 2)])
    with pytest.raises(ValueError, match="unknown network preset"):
        build_network({"preset": "huge"}, 4, 2)
    with pytest.raises(ValueError, match="activation"):
        EstimatorNet([4, 2], activation="sigmoid")
