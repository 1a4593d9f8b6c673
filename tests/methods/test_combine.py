"""Combinations of methods: names and the mean of the members."""

from __future__ import annotations

import numpy as np

from sparecast.methods.combine import combination_members, combination_name, combine


def test_combination_names_round_trip() -> None:
    assert combination_name(["sba"]) == "sba"
    assert combination_name(["sba", "lightgbm"]) == "mean(sba,lightgbm)"
    assert combination_members("mean(sba,lightgbm)") == ["sba", "lightgbm"]
    assert combination_members("tsb") == ["tsb"]


def test_combine_is_the_mean_of_the_members() -> None:
    values = {"a": np.array([[1.0, 2.0]]), "b": np.array([[3.0, 6.0]]), "c": np.zeros((1, 2))}
    np.testing.assert_array_equal(combine("mean(a,b)", values), [[2.0, 4.0]])
    np.testing.assert_array_equal(combine("c", values), [[0.0, 0.0]])
