"""bench/targets.py: a target is met on its side of the goal, unmeasured when absent."""

from bench.targets import Target, check

AT_LEAST = Target("speed", "speed", ">=", 100, "events/s")
AT_MOST = Target("p99", "p99", "<=", 250, "ms")


def test_met_on_the_right_side_of_the_goal():
    rows = check({"speed": 100, "p99": 251}, [AT_LEAST, AT_MOST])
    assert [row["met"] for row in rows] == [True, False]
    rows = check({"speed": 99.9, "p99": 250}, [AT_LEAST, AT_MOST])
    assert [row["met"] for row in rows] == [False, True]


def test_unmeasured_or_not_a_number_is_not_met_nor_failed():
    rows = check({"x_speed": 150, "p99": "not run"}, [AT_LEAST, AT_MOST])
    assert [(row["measured"], row["met"]) for row in rows] == [(None, None), (None, None)]
    assert check({"x_speed": 150}, [AT_LEAST], prefix="x_")[0]["met"] is True
