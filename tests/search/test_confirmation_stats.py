"""Confirmation statistics on hand-made numbers; every interval below is also computed by hand in the comments.

t quantiles (two-sided 95%): t(0.975, 1) = 12.7062, t(0.975, 2) = 4.3027 (any t table).
"""

import dataclasses
import math

import pytest

from search.confirm.statistics import (
    CSV_COLUMNS,
    Confirmed,
    Verdict,
    confirmation_sentence,
    confirmation_statistics,
    mean_interval,
    paired_difference,
    read_confirmed_csv,
    t_quantile,
    write_confirmed_csv,
)

T1, T2 = 12.7062, 4.3027
approx = lambda x: pytest.approx(x, abs=5e-5)  # noqa: E731  (hand computations keep 5 significant digits)

# Issue 10's own figures: test_acc on seeds 0, 1, 2 of the shipped default search.
ISSUE_10 = {
    "plain": {0: 0.738, 1: 0.736, 2: 0.714},
    "coord": {0: 0.744, 1: 0.728, 2: 0.727},
    "se": {0: 0.710, 1: 0.684, 2: 0.701},
    "cbam": {0: 0.705, 1: 0.688, 2: 0.691},
}


def by_name(rows):
    return {row.name: row for row in rows}


def test_t_quantiles_match_the_table():
    assert t_quantile(1) == pytest.approx(T1, abs=1e-4)
    assert t_quantile(2) == pytest.approx(T2, abs=1e-4)
    assert t_quantile(30) == pytest.approx(2.0423, abs=1e-4)
    with pytest.raises(ValueError):
        t_quantile(0)


def test_mean_interval_is_scipys_one_sample_t_interval():
    """The package's one t-interval equals SciPy's ``ttest_1samp(...).confidence_interval`` at any level."""
    from scipy import stats

    values = [0.012, -0.004, 0.021, 0.007, 0.0]
    for level in (0.95, 0.99, 0.9983):
        mean, std, low, high = mean_interval(values, confidence=level)
        theirs = stats.ttest_1samp(values, 0.0).confidence_interval(level)
        assert math.isclose(low, theirs.low) and math.isclose(high, theirs.high)
    assert mean == pytest.approx(0.0072) and std == pytest.approx(stats.tstd(values))
    assert mean_interval([0.5, 0.5, 0.5]) == (0.5, 0.0, 0.5, 0.5)  # no spread: a zero-width interval
    assert mean_interval([0.1]) == (0.1, None, None, None) and mean_interval([]) == (None, None, None, None)


def test_paired_difference_keeps_the_seeds_both_have_in_order():
    assert paired_difference({2: 0.7, 0: 0.6, 5: 0.9}, {0: 0.5, 2: 0.75, 3: 0.1}) == {
        0: pytest.approx(0.1), 2: pytest.approx(-0.05)}
    assert list(paired_difference({2: 0.7, 0: 0.6}, {0: 0.5, 2: 0.75})) == [0, 2]
    assert paired_difference({1: 0.5}, {2: 0.5}) == {}


def test_issue_10_figures_by_hand():
    rows = by_name(confirmation_statistics(ISSUE_10, reference="plain", arch_text={"coord": "- | coord/r8 | eca/k3 | -"}))

    # plain: mean = 2.188 / 3 = 0.729333; deviations +0.008667 +0.006667 -0.015333;
    # squares 7.5111e-5 + 4.4444e-5 + 2.35111e-4 = 3.54667e-4; / (3-1) = 1.77333e-4; std = 0.013317
    # half-width = 4.3027 * 0.013317 / sqrt(3) = 0.033081 -> CI 0.696253 .. 0.762414
    plain = rows["plain"]
    assert plain.verdict is Verdict.REFERENCE and plain.n == 3 and plain.seeds == (0, 1, 2)
    assert plain.mean == approx(0.729333) and plain.std == approx(0.013317)
    assert plain.ci_low == approx(0.696253) and plain.ci_high == approx(0.762414)
    assert plain.diff_mean == 0.0  # against itself

    # coord - plain by seed: +0.006, -0.008, +0.013; mean = 0.011 / 3 = +0.003667
    # deviations +0.002333 -0.011667 +0.009333; squares 5.444e-6 + 1.36111e-4 + 8.7111e-5 = 2.28667e-4; / 2 ->
    # std(d) = 0.010693; half-width = 4.3027 * 0.010693 / sqrt(3) = 0.026562 -> CI -0.022895 .. +0.030229: contains 0
    coord = rows["coord"]
    assert coord.arch_text == "- | coord/r8 | eca/k3 | -" and coord.n_paired == 3
    assert coord.mean == approx(0.733)
    assert coord.diff_mean == approx(0.003667)
    assert coord.diff_ci_low == approx(-0.022895) and coord.diff_ci_high == approx(0.030229)
    assert coord.verdict is Verdict.WITHIN_NOISE and coord.note == ""

    # se - plain: -0.028, -0.052, -0.013; mean = -0.093 / 3 = -0.031; deviations +0.003 -0.021 +0.018;
    # squares 9e-6 + 4.41e-4 + 3.24e-4 = 7.74e-4; / 2 = 3.87e-4; std(d) = 0.019672;
    # half-width = 4.3027 * 0.019672 / sqrt(3) = 0.048869 -> CI -0.079869 .. +0.017869: contains 0.
    # SE looks 3 points worse, but with 3 seeds and this spread that is NOT beyond noise.
    se = rows["se"]
    assert se.diff_mean == approx(-0.031)
    assert se.diff_ci_low == approx(-0.079869) and se.diff_ci_high == approx(0.017869)
    assert se.verdict is Verdict.WITHIN_NOISE

    # cbam - plain: -0.033, -0.048, -0.023; mean = -0.104 / 3 = -0.034667; deviations +0.001667 -0.013333 +0.011667;
    # squares 2.778e-6 + 1.77778e-4 + 1.36111e-4 = 3.16667e-4; / 2 = 1.58333e-4; std(d) = 0.012583;
    # half-width = 4.3027 * 0.012583 / sqrt(3) = 0.031258 -> CI -0.065925 .. -0.003409: wholly below 0
    cbam = rows["cbam"]
    assert cbam.diff_mean == approx(-0.034667)
    assert cbam.diff_ci_low == approx(-0.065925) and cbam.diff_ci_high == approx(-0.003409)
    assert cbam.verdict is Verdict.WORSE

    # coord has the highest mean (0.733 > 0.729) but is within noise: the sentence must not name it
    sentence = confirmation_sentence(list(rows.values()))
    # the largest upper bound of a difference is coord's +0.030229: that is the gain the intervals rule out
    assert sentence == ("No placement beats the plain backbone by more than 3.0 points (95%, 3 seeds): "
                        "keep the plain backbone.")
    assert confirmation_sentence(list(rows.values()), resolution=0.01).endswith(
        "(95%, 3 seeds; intervals up to ±4.9 points, ±1.0 asked): keep the plain backbone.")
    assert "coord" not in sentence
    # intervals wider than the plain backbone's headroom (1 - its mean) resolve nothing: said so, not "more than X"
    wide = [dataclasses.replace(r, diff_ci_high=0.5) if r.verdict is not Verdict.REFERENCE else r
            for r in rows.values()]
    assert confirmation_sentence(wide).startswith("Nothing was resolved: the intervals (95%, 3 seeds) allow any gain "
                                                  "up to the plain backbone's")


def test_clear_better_case_names_the_winner_with_its_interval():
    # better - plain by seed: +0.05, +0.06, +0.04; mean +0.05; std(d) = 0.01 (deviations 0, +0.01, -0.01);
    # half-width = 4.3027 * 0.01 / sqrt(3) = 0.024842 -> CI +0.025158 .. +0.074842: wholly above 0
    scores = {
        "plain": {0: 0.70, 1: 0.71, 2: 0.72},
        "se": {0: 0.75, 1: 0.77, 2: 0.76},
        "eca": {0: 0.71, 1: 0.70, 2: 0.73},  # within noise; must not be named
    }
    rows = confirmation_statistics(scores, reference="plain", arch_text={"se": "se/r8 | - | - | -"},
                                   latency_ms={"plain": 2.4, "se": 2.8})
    se = by_name(rows)["se"]
    assert se.verdict is Verdict.BETTER and se.latency_ms == 2.8
    assert se.diff_mean == approx(0.05) and se.diff_ci_low == approx(0.025158) and se.diff_ci_high == approx(0.074842)
    assert by_name(rows)["eca"].verdict is Verdict.WITHIN_NOISE
    assert confirmation_sentence(rows) == (
        "se/r8 | - | - | - beats the plain backbone by +5.0 [+2.5, +7.5] points (95%, 3 seeds), "
        "at 2.80 ms vs 2.40 ms latency.")
    assert by_name(rows)["se"].diff_half_width == approx(0.024842)


def test_several_better_rows_name_the_largest_paired_gain():
    scores = {"plain": {0: 0.70, 1: 0.71, 2: 0.72}, "a": {0: 0.75, 1: 0.77, 2: 0.76}, "b": {0: 0.80, 1: 0.81, 2: 0.83}}
    sentence = confirmation_sentence(confirmation_statistics(scores, reference="plain"))
    assert sentence.startswith("b beats the plain backbone by +10.3 [") and "2 placements beat it" in sentence


def test_every_placement_worse_and_a_wider_level() -> None:
    scores = {"plain": {0: 0.80, 1: 0.81, 2: 0.82}, "a": {0: 0.70, 1: 0.705, 2: 0.72}}
    rows = confirmation_statistics(scores, reference="plain", diff_confidence=0.99)
    a = by_name(rows)["a"]
    assert a.verdict is Verdict.WORSE and a.diff_level == 0.99
    wide = by_name(confirmation_statistics(scores, reference="plain"))["a"]
    assert a.diff_half_width > wide.diff_half_width  # 99% is wider than 95%
    assert confirmation_sentence(rows).startswith("No placement beats the plain backbone: every one is worse")


def test_pairing_uses_only_seeds_present_in_both():
    # plain has seeds 0, 1, 2; "x" has 0, 2, 3 (seed 1 failed, seed 3 extra). Paired seeds: 0 and 2.
    # Unpaired, x looks worse: mean(x) = (0.80 + 0.81 + 0.50) / 3 = 0.703333 < mean(plain) = 0.71.
    # Paired: d = 0.80 - 0.70 = +0.10 (seed 0), 0.81 - 0.72 = +0.09 (seed 2); mean +0.095; std(d) = 0.0070711;
    # half-width = 12.7062 * 0.0070711 / sqrt(2) = 0.063531 -> CI +0.031469 .. +0.158531: better.
    scores = {"plain": {0: 0.70, 1: 0.71, 2: 0.72}, "x": {3: 0.50, 0: 0.80, 2: 0.81}}
    x = by_name(confirmation_statistics(scores, reference="plain"))["x"]
    assert x.seeds == (0, 2, 3) and x.n == 3 and x.n_paired == 2
    assert x.mean == approx(0.703333)
    assert x.diff_mean == approx(0.095)
    assert x.diff_ci_low == approx(0.031469) and x.diff_ci_high == approx(0.158531)
    assert x.verdict is Verdict.BETTER
    assert "paired on seed 0, 2" in x.note and "seed 1 missing here" in x.note and "seed 3 missing from" in x.note


def test_one_paired_seed_is_within_noise_and_says_why():
    # "y" shares only seed 0 with plain: d = +0.20, but one difference has no spread, so no interval and no claim.
    scores = {"plain": {0: 0.70, 1: 0.71}, "y": {0: 0.90}}
    y = by_name(confirmation_statistics(scores, reference="plain"))["y"]
    assert y.n == 1 and y.std is None and y.ci_low is None and y.ci_high is None
    assert y.diff_mean == approx(0.20) and y.diff_ci_low is None and y.diff_ci_high is None
    assert y.verdict is Verdict.WITHIN_NOISE and "1 paired seed" in y.note and "no interval" in y.note


def test_single_seed_everywhere():
    scores = {"plain": {0: 0.70}, "z": {0: 0.95}}
    rows = confirmation_statistics(scores, reference="plain")
    plain, z = rows
    assert plain.verdict is Verdict.REFERENCE and plain.std is None and "no interval" in plain.note
    assert z.verdict is Verdict.WITHIN_NOISE
    sentence = confirmation_sentence(rows)
    assert "keep the plain backbone" in sentence and "1 seed" in sentence and "z" not in sentence.split(":")[0]


def test_no_shared_seed_at_all():
    rows = confirmation_statistics({"plain": {0: 0.7, 1: 0.71}, "w": {5: 0.9, 6: 0.91}}, reference="plain")
    w = rows[1]
    assert w.n_paired == 0 and w.diff_mean is None and w.verdict is Verdict.WITHIN_NOISE
    assert "0 paired seeds" in w.note and "paired on seed none" in w.note


def test_bad_input_is_refused_in_one_line():
    with pytest.raises(ValueError, match="reference 'plain'"):
        confirmation_statistics({"se": {0: 0.7}}, reference="plain")
    with pytest.raises(ValueError, match="fraction"):
        confirmation_statistics({"plain": {0: 70.0}}, reference="plain")
    with pytest.raises(ValueError, match="fraction"):
        confirmation_statistics({"plain": {0: math.nan}}, reference="plain")
    with pytest.raises(ValueError, match="reference"):
        confirmation_sentence([])


def test_csv_has_unit_carrying_columns_and_round_trips(tmp_path):
    rows = confirmation_statistics(ISSUE_10, reference="plain", latency_ms={"plain": 2.4})
    path = write_confirmed_csv(rows, tmp_path / "confirmed.csv")
    header = path.read_text().splitlines()[0].split(",")
    assert header == list(CSV_COLUMNS)
    assert {"test_acc_mean", "test_acc_std", "test_acc_ci95_low", "test_acc_ci95_high", "diff_vs_plain_mean",
            "diff_vs_plain_ci95_low", "diff_vs_plain_ci95_high", "verdict", "latency_ms"} <= set(header)
    back = read_confirmed_csv(path)
    assert [r.name for r in back] == list(ISSUE_10)
    for before, after in zip(rows, back):
        assert after.verdict is before.verdict and after.seeds == before.seeds and after.n == before.n
        for field in dataclasses.fields(Confirmed):
            value = getattr(before, field.name)
            if isinstance(value, float):
                assert getattr(after, field.name) == pytest.approx(value, abs=1e-6)
    assert back[1].latency_ms is None  # not measured: empty cell, read back as None
    assert "within noise" in path.read_text() and "worse" in path.read_text()


def test_a_restored_confirmation_of_another_front_is_refused_by_name():
    """A confirmation experiment restored from another candidate list (a search confirmed, then resumed with
    another front) names the stray candidate and what to do, instead of a bare KeyError."""
    from types import SimpleNamespace

    from backbones import ArchConfig, StageConfig
    from search.confirm.phase import Candidate, paired_differences
    from search.outcomes import CONFIRM_TAG

    plain = ArchConfig(backbone="resnet10t", in_chans=1, num_classes=10, stages=(StageConfig(),) * 4)
    candidates = [Candidate(name="plain", arch=plain, control=True), Candidate(name="se_r16", arch=plain, control=True)]

    def result(name: str, seed: int, acc: float) -> SimpleNamespace:
        return SimpleNamespace(error=None, metrics={"test_acc": acc}, config={
            "seed": seed, "label": f"confirm {name} seed {seed}", "tags": {CONFIRM_TAG: name}})

    ok = [result("plain", 1, 0.5), result("se_r16", 1, 0.6)]
    assert paired_differences(ok, candidates=candidates) == {"se_r16": [pytest.approx(0.1)]}
    with pytest.raises(RuntimeError, match=r"'9c83a69f', which is not among this search's candidates \(plain, "
                                           r"se_r16\).*runs/NAME/confirm"):
        paired_differences([*ok, result("9c83a69f", 1, 0.7)], candidates=candidates)


def test_a_cpu_search_ends_by_stating_what_it_resolved() -> None:
    from search.summary.console import cpu_resolution_line

    scores = {"plain": {1: 0.80, 2: 0.81, 3: 0.79}, "se": {1: 0.81, 2: 0.80, 3: 0.81}}
    rows = confirmation_statistics(scores, reference="plain")
    width = next(r.diff_half_width for r in rows if r.name == "se")
    line = cpu_resolution_line(rows)
    assert f"about ±{100 * width:.1f} points (95%, 3 seeds)" in line and "GPU budget" in line
    one_seed = confirmation_statistics({"plain": {1: 0.8}, "se": {1: 0.81}}, reference="plain")
    assert "cannot resolve a difference to the plain backbone (1 seed)" in cpu_resolution_line(one_seed)
