"""Scorers against hand-computed cases."""

from __future__ import annotations

import pytest

from rlm_plugins.evals.scoring import (
    count_score,
    exact_choice,
    exact_number,
    name_set_f1,
    number_set_f1,
    pair_f1,
    pairs_of,
    set_f1,
)


@pytest.mark.parametrize(
    ("answer", "gold", "expected"),
    [(12, 12, 1.0), ("There are 14 records.", 12, 0.5625), ("1,200", 1_199, 0.75), ("none", 3, 0.0), (9.0, 10, 0.75)],
)
def test_counts_score_three_quarters_to_the_error(answer, gold, expected):
    assert count_score(answer, gold) == pytest.approx(expected)


def test_exact_number_wants_only_the_gold_number():
    assert exact_number("The number is 7191885.", 7191885) == 1.0
    assert exact_number("7191885 or 6023267", 7191885) == 0.0
    assert exact_number(True, 1) == 0.0


def test_exact_choice_names_the_gold_and_nothing_else():
    labels = ["billing", "shipping", "bug"]
    assert exact_choice("Billing.", "billing", labels) == 1.0
    assert exact_choice("billing, then shipping", "billing", labels) == 0.0
    assert exact_choice("debugging", "bug", labels) == 0.0
    assert exact_choice("Port Lomorgal", "Port Lomorgal", ["Port Lomorgal", "Port Lomor"]) == 1.0


def test_set_and_pair_f1():
    assert set_f1({1, 2, 3}, {2, 3, 4, 5}) == pytest.approx(2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4))
    assert set_f1(set(), set()) == 1.0
    assert number_set_f1("[3311206, 5859345]", [3311206, 5859345, 8497370]) == pytest.approx(0.8)
    assert pairs_of("(4, 2), [7,9] and (3, 3)") == {(2, 4), (7, 9)}
    assert pairs_of([[2, 4], (9, 7)]) == {(2, 4), (7, 9)}
    assert pair_f1([(1, 2), (3, 4)], [(2, 1), (5, 6)]) == pytest.approx(0.5)
    names = ["run_a_1", "run_a_10", "run_b_2"]
    assert name_set_f1("run_a_10 and run_b_2", ["run_a_10"], names) == pytest.approx(2 / 3)
