"""Statistics over seeds against hand computations: t quantiles, CIs, paired differences, the CI ∋ 0 mark."""

import math

import pytest

from sempos.report.stats import estimate, fmt_delta, fmt_estimate, paired, paired_differences, t_quantile


@pytest.mark.parametrize("df,q", [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (29, 2.045)])
def test_t_quantiles_match_the_printed_table(df, q):
    assert t_quantile(0.975, df) == pytest.approx(q, abs=5e-4)


def test_t_quantile_rejects_bad_arguments():
    with pytest.raises(ValueError, match="df >= 1"):
        t_quantile(0.975, 0)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        t_quantile(1.0, 3)


def test_two_seeds_by_hand():
    e = estimate([70.0, 74.0])
    # mean 72, s = sqrt(((-2)^2 + 2^2) / 1) = sqrt(8); half-width = 12.706 * sqrt(8) / sqrt(2) = 25.412
    assert (e.n, e.mean) == (2, 72.0) and e.std == pytest.approx(math.sqrt(8))
    assert e.ci_low == pytest.approx(72 - 25.412, abs=2e-3) and e.ci_high == pytest.approx(72 + 25.412, abs=2e-3)


def test_three_seeds_by_hand_and_nan_is_ignored():
    e = estimate([1.0, float("nan"), 2.0, 3.0, None])
    # mean 2, s = 1, half-width = 4.303 / sqrt(3) = 2.4843
    assert (e.n, e.mean, e.std) == (3, 2.0, 1.0)
    assert e.ci_low == pytest.approx(2 - 2.4843, abs=1e-3) and e.ci_high == pytest.approx(2 + 2.4843, abs=1e-3)
    assert e.ci_contains_zero is True


def test_one_seed_has_no_std_and_no_ci_and_says_so():
    e = estimate([66.0])
    assert e.n == 1 and e.mean == 66.0 and math.isnan(e.std) and math.isnan(e.ci_low) and math.isnan(e.ci_high)
    assert not e.has_ci and e.ci_contains_zero is None
    assert fmt_estimate(e) == "66.00 (n=1, no CI)"
    assert fmt_delta(e) == "+66.00 (n=1, no CI)"
    assert estimate([]).n == 0 and fmt_estimate(estimate([])) == "–"


def test_paired_difference_uses_common_seeds_only():
    variant = {0: 71.0, 1: 73.0, 2: 75.0}
    host = {0: 70.0, 1: 71.0, 2: 72.0, 3: 99.0}  # seed 3 has no partner
    assert paired_differences(variant, host) == {0: 1.0, 1: 2.0, 2: 3.0}
    d = paired(variant, host)
    assert (d.n, d.mean, d.std) == (3, 2.0, 1.0)
    assert d.ci_low == pytest.approx(-0.4843, abs=1e-3) and d.ci_contains_zero is True
    # The unpaired difference of means is also 2.0 here, but pairing removes the shared seed effect:
    # host and variant both rise by 2 per seed in the next case, so the paired CI is tight and excludes 0.
    d2 = paired({0: 72.0, 1: 75.0, 2: 78.0}, {0: 70.0, 1: 72.0, 2: 74.0})  # differences 2, 3, 4
    assert d2.mean == 3.0 and d2.ci_low == pytest.approx(3 - 2.4843, abs=1e-3) and d2.ci_contains_zero is False


def test_formatting_marks_a_ci_that_contains_zero():
    assert fmt_estimate(estimate([70.0, 74.0])) == "72.00 ± 2.83 [46.6, 97.4]"
    assert fmt_delta(paired({0: 72.0, 1: 75.0, 2: 78.0}, {0: 70.0, 1: 72.0, 2: 74.0})) == "+3.00 [+0.52, +5.48]"
    assert fmt_delta(estimate([1.0, 2.0, 3.0])) == "+2.00 [-0.48, +4.48] (CI ∋ 0)"
