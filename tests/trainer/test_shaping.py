import pytest
import torch

from trainer.shaping import centered_rank_shaping, get_shaper, raw_shaping, zscore_shaping


def test_zscore_uses_per_group_means_and_one_global_std():
    f = torch.tensor([[1.0, 10.0], [3.0, 14.0], [2.0, 12.0]])  # (P=3, G=2): group 2 is easier
    shaped = zscore_shaping(f)
    centred = f - f.mean(0)
    expected = (centred / f.std(unbiased=False)).mean(1)
    torch.testing.assert_close(shaped, expected.float())
    assert shaped.argmax() == 1 and shaped.argmin() == 0
    # one score per member is the plain z-score
    torch.testing.assert_close(zscore_shaping([1.0, 2.0, 3.0]), torch.tensor([-1.2247, 0.0, 1.2247]), atol=1e-4, rtol=0)
    assert torch.equal(zscore_shaping([5.0, 5.0]), torch.zeros(2))


def test_centered_rank_is_in_half_unit_range_and_averages_ties():
    assert centered_rank_shaping([10.0, -3.0, 7.0, 0.0]).tolist() == pytest.approx([0.5, -0.5, 1 / 6, -1 / 6])
    assert centered_rank_shaping([1.0, 1.0, 2.0]).tolist() == pytest.approx([-0.25, -0.25, 0.5])


def test_raw_is_the_mean_over_groups():
    assert raw_shaping([[1.0, 3.0], [0.0, 0.0]]).tolist() == [2.0, 0.0]


def test_nan_and_missing_fitness_rank_worst_with_a_warning_naming_the_member():
    with pytest.warns(RuntimeWarning, match=r"member\(s\) \[1, 3\]"):
        ranks = centered_rank_shaping([0.3, float("nan"), -5.0, None])
    assert ranks[1] == ranks[3] == ranks.min() < ranks[2]
    with pytest.warns(RuntimeWarning, match=r"\[0\]"):
        z = zscore_shaping([None, 1.0, 2.0, 3.0])
    assert z[0] == z[1] == z.min()
    with pytest.warns(RuntimeWarning):
        assert raw_shaping([[float("nan")], [2.0]]).tolist() == [2.0, 2.0]


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="4 entries but the population has 3"):
        zscore_shaping([1, 2, 3, 4], population_size=3)
    with pytest.raises(ValueError, match="same G"):
        raw_shaping([[1.0], [1.0, 2.0]])
    with pytest.raises(ValueError, match=r"choose one of \['rank', 'raw', 'zscore'\]"):
        get_shaper("fancy")
