import pytest
import torch

from mtl.losses import FixedWeighting, UncertaintyWeighting, make_weighting


def test_fixed_weighting_is_a_weighted_sum():
    w = FixedWeighting(2.0, 0.5)
    assert w(torch.tensor([1.0, 4.0])).item() == pytest.approx(4.0)
    assert list(w.parameters()) == []


def test_uncertainty_weights_are_parameters_that_move():
    torch.manual_seed(0)
    weighting = UncertaintyWeighting(2)
    assert [p.requires_grad for p in weighting.parameters()] == [True]
    net = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(list(net.parameters()) + list(weighting.parameters()), lr=0.05)
    before = weighting.task_weights()
    x = torch.randn(64, 4)
    for _ in range(30):
        out = net(x)
        # task 0 is noisy (large irreducible loss), task 1 is easy
        losses = torch.stack([(out[:, 0] - torch.randn(64) * 5).pow(2).mean(), out[:, 1].pow(2).mean()])
        opt.zero_grad()
        weighting(losses).backward()
        opt.step()
    after = weighting.task_weights()
    assert after != before
    assert after["age"] < before["age"]  # the noisier task gets down-weighted
    assert after["gender"] > after["age"]


def test_unknown_weighting_is_named():
    with pytest.raises(ValueError, match="'magic'"):
        make_weighting("magic")
