"""Loss-weight schedules as pure functions of training progress (method.md, "Schedules")."""

from __future__ import annotations

import pytest

from dynakd.schedules import Schedule, constant


@pytest.mark.parametrize(
    "schedule,expected",
    [
        (Schedule("constant", 3.0, 0.0), (3.0, 3.0, 3.0)),
        (constant(2.5), (2.5, 2.5, 2.5)),
        (Schedule("linear", 10.0, 0.0), (10.0, 5.0, 0.0)),
        (Schedule("linear", 0.0, 4.0), (0.0, 2.0, 4.0)),
        (Schedule("cosine", 10.0, 0.0), (10.0, 5.0, 0.0)),
        (Schedule("cosine", 2.0, 6.0), (2.0, 4.0, 6.0)),
        (Schedule("step", 1.0, 0.0, switch=0.5), (1.0, 0.0, 0.0)),
    ],
)
def test_values_at_0_half_1(schedule, expected):
    assert [schedule(t) for t in (0.0, 0.5, 1.0)] == pytest.approx(list(expected), abs=1e-12)


def test_linear_and_cosine_in_between():
    assert Schedule("linear", 10.0, 0.0)(0.25) == pytest.approx(7.5)
    assert Schedule("cosine", 10.0, 0.0)(0.25) == pytest.approx(5.0 * (1 + 2**-0.5))
    values = [Schedule("cosine", 10.0, 0.0)(t / 20) for t in range(21)]
    assert all(a >= b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("kind", ["constant", "linear", "cosine"])
def test_warmup(kind):
    s = Schedule(kind, 10.0, 0.0, warmup=0.2)
    assert s(0.0) == 0.0
    assert s(0.1) == pytest.approx(5.0)
    assert s(0.2) == pytest.approx(10.0)
    assert s(1.0) == pytest.approx(10.0 if kind == "constant" else 0.0)
    if kind != "constant":
        assert s(0.6) == pytest.approx(5.0)  # the decay spans the rest of training


def test_warmup_before_a_step():
    s = Schedule("step", 4.0, 1.0, warmup=0.2, switch=0.5)
    assert [s(t) for t in (0.0, 0.1, 0.2, 0.49, 0.5, 1.0)] == pytest.approx([0.0, 2.0, 4.0, 4.0, 1.0, 1.0])


@pytest.mark.parametrize("switch", [0.3, 0.5, 0.8])
def test_staged_switch(switch):
    s = Schedule("step", 2.0, 7.0, switch=switch)
    assert s(0.0) == s(switch - 1e-6) == 2.0
    assert s(switch) == s(switch + 1e-6) == s(1.0) == 7.0


@pytest.mark.parametrize(
    "schedule,low,high",
    [
        (Schedule("linear", 10.0, 0.0), 10.0, 0.0),
        (Schedule("cosine", 10.0, 2.0), 10.0, 2.0),
        (Schedule("constant", 4.0, 0.0), 4.0, 4.0),
        (Schedule("step", 1.0, 3.0), 1.0, 3.0),
        (Schedule("linear", 10.0, 0.0, warmup=0.2), 0.0, 0.0),
    ],
)
def test_progress_is_clamped(schedule, low, high):
    assert schedule(-0.5) == schedule(0.0) == pytest.approx(low)
    assert schedule(1.7) == schedule(1.0) == pytest.approx(high)


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match="unknown schedule kind"):
        Schedule("exponential", 1.0, 0.0)(0.5)


def test_progress_of_nan_is_refused():
    """min and max pass NaN on: a linear weight of NaN, a step's end."""
    for kind in ("constant", "linear", "cosine", "step"):
        with pytest.raises(ValueError, match="training progress is NaN"):
            Schedule(kind)(float("nan"))

