"""Cart state and abandonment schedule as pure functions."""

from shopstream.agents.coupons import cart
from shopstream.agents.coupons.rules import Step
from shopstream.schemas.events import Item

STEPS = (Step(60, 0), Step(240, 1000), Step(600, 0))


def test_add_remove_and_order_keep_quantities() -> None:
    user: dict = {}
    cart.add_item(user, "a", 2, 500, 1)
    cart.add_item(user, "a", 1, 450, 2)      # latest price wins
    cart.add_item(user, "b", 1, 1000, 3)
    cart.remove_item(user, "b", 5, 4)        # more than held: the line goes
    cart.remove_item(user, "zz", 1, 5)       # unknown sku: nothing happens
    assert user["items"] == {"a": [3, 450]} and user["changed"] == 4
    cart.remove_ordered(user, [Item("a", 2, 450)], 6)
    assert user["items"] == {"a": [1, 450]}


def test_schedule_rearm_fire_and_cancel() -> None:
    user: dict = {}
    cart.add_item(user, "a", 1, 500, 100)
    assert cart.arm(user, 100, STEPS) == 160
    assert cart.arm(user, 130, STEPS) == 190            # a change re-arms from step 0
    assert cart.fire(user, 160, STEPS) is None          # the old deadline is stale
    assert cart.fire(user, 190, STEPS) == (0, 370)
    assert cart.fire(user, 370, STEPS) == (1, 730)
    assert cart.fire(user, 730, STEPS) == (2, None)
    assert cart.deadline(user, STEPS) is None
    assert cart.cancel(user) is False                   # nothing pending after the last step
    cart.arm(user, 800, STEPS)
    assert cart.cancel(user) is True
    user["items"] = {}
    assert cart.arm(user, 900, STEPS) is None           # an empty cart does not arm
