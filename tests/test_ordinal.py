import pytest
import torch

from mtl.ordinal import AgeBins, CoralLayer, coral_loss


def test_bins_ranks_levels_and_decoding():
    bins = AgeBins(min_age=1, max_age=116, width=5)
    assert bins.num_bins == 24
    ages = torch.tensor([1.0, 5.0, 6.0, 116.0])
    assert bins.rank(ages).tolist() == [0, 0, 1, 23]
    levels = bins.levels(ages)
    assert levels.shape == (4, 23)
    assert levels[2].tolist() == [1.0] + [0.0] * 22
    # certain predictions decode to the bin centre
    assert bins.expected_age(levels[2:3]).item() == pytest.approx(8.0)


def test_coral_probabilities_never_increase_over_bins():
    torch.manual_seed(0)
    layer = CoralLayer(16, 40)
    with torch.no_grad():
        layer.raw_gaps.normal_(0, 3)  # arbitrary (also very negative) raw parameters
    probs = torch.sigmoid(layer(torch.randn(64, 16) * 5))
    assert probs.shape == (64, 39)
    assert (probs[:, 1:] <= probs[:, :-1]).all()


def test_prior_init_reproduces_label_distribution():
    bins = AgeBins(min_age=1, max_age=50, width=1)
    ages = torch.randint(1, 51, (500,)).float()
    prior = bins.levels(ages).mean(0)
    layer = CoralLayer(8, bins.num_bins)
    torch.nn.init.zeros_(layer.fc.weight)
    layer.init_biases_from_prior(prior)
    probs = torch.sigmoid(layer(torch.zeros(1, 8)))[0]
    assert torch.allclose(probs, prior.clamp(1e-4, 1 - 1e-4), atol=0.02)


def test_quantiles_bracket_the_expected_age():
    bins = AgeBins(min_age=1, max_age=100)
    layer = CoralLayer(4, bins.num_bins)
    probs = torch.sigmoid(layer(torch.randn(10, 4)))
    low, mid, high = bins.quantile_age(probs, 0.1), bins.expected_age(probs), bins.quantile_age(probs, 0.9)
    assert (low <= mid + 1).all() and (mid <= high + 1).all()


def test_shape_errors_are_value_errors():
    with pytest.raises(ValueError, match="expects"):
        CoralLayer(4, 5)(torch.zeros(4))
    with pytest.raises(ValueError, match="differ in shape"):
        coral_loss(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="width"):
        AgeBins(width=0)
