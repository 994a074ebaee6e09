import numpy as np
import pandas as pd
import pytest

from mtl.dataset import BatchIndexSampler, balancing_weights


@pytest.fixture
def frame():
    return pd.DataFrame({"race": [0, 0, 0, 1], "gender": [0, 1, 1, 0], "age": [5, 30, 30, 40]})


def test_balancing_weights_give_every_group_equal_mass(frame):
    assert balancing_weights(frame, "none") is None
    assert balancing_weights(frame, "race").tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0])
    assert balancing_weights(frame, "race_gender").tolist() == pytest.approx([1.0, 0.5, 0.5, 1.0])
    weights = balancing_weights(frame, "age_band_race")
    per_group = pd.Series(weights).groupby([frame["age"] // 10, frame["race"]]).sum()
    assert np.allclose(per_group, 1.0)


def test_unknown_balance_column_is_named(frame):
    with pytest.raises(ValueError, match="cannot read 'ethnicity'"):
        balancing_weights(frame, "race_ethnicity")


def test_weighted_sampler_draws_groups_equally():
    weights = np.array([1.0] * 90 + [9.0] * 10)  # 90 rows of group A, 10 of group B, equal total mass
    sampler = BatchIndexSampler(100, 50, shuffle=True, seed=0, weights=weights)
    drawn = []
    for epoch in range(20):
        sampler.set_epoch(epoch)
        drawn += [i for batch in sampler for i in batch]
    drawn = np.array(drawn)
    share_b = (drawn >= 90).mean()
    assert share_b == pytest.approx(0.5, abs=0.05)
