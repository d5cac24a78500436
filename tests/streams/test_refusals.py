"""An event a capability refuses on its state is dead-lettered with the reason, counted dead
instead of processed, and written nowhere by that capability.

Through a real broker and redis-server, with a capability defined here that keeps a balance
per user: top-ups add, spends beyond the balance are refused. The batch loop is the real one.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from shopstream.agents.base import NoHooks, PartitionBatch, Refusal, Takes
from shopstream.core import codec
from shopstream.kafka_io.envelope import Reason
from shopstream.replay import replay_lines
from shopstream.schemas.events import CheckIn, PointsRedeem
from tests.support import Infra, counts, process_topic, read_records, run_async

pytestmark = pytest.mark.integration

TS = 1_794_326_400_000


class Balances(NoHooks):
    """A check-in earns 5, a redemption spends; a redemption beyond the balance is refused.
    Balances stay in memory: the test reads them, not Redis."""

    name = "balances"
    takes = Takes(frozenset({"check_in", "points_redeem"}))

    def __init__(self) -> None:
        self.balance: Counter[str] = Counter()

    def apply(self, batch: PartitionBatch, loaded: Any) -> None:
        for ev in batch.feeds[self.name].events:
            if isinstance(ev, CheckIn):
                self.balance[ev.user_id] += 5
            elif isinstance(ev, PointsRedeem):
                if ev.points > self.balance[ev.user_id]:
                    batch.refused.append(Refusal(ev, Reason.INSUFFICIENT_POINTS,
                                                 f"balance {self.balance[ev.user_id]} < "
                                                 f"{ev.points}"))
                else:
                    self.balance[ev.user_id] -= ev.points


def _events(users: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for u in range(users):
        uid = f"ref-u{u}"
        out.append({"event_id": f"ci-{u}", "type": "check_in", "ts": TS + u, "user_id": uid})
        # 3 fits the balance of 5, 4 then does not (1 left), 1 does.
        for i, points in enumerate((3, 4, 1)):
            out.append({"event_id": f"rd-{u}-{i}", "type": "points_redeem",
                        "ts": TS + u + i + 1, "user_id": uid, "points": points,
                        "reward": "coupon"})
    return out


def test_refused_events_are_dead_lettered_with_the_reason_and_counted_dead(
        infra: Infra) -> None:
    s = infra.settings(agents="event_stats")
    events = _events(40)
    replay_lines(s, [codec.dumps(ev) for ev in events])
    agent = Balances()
    run_async(process_topic(s, agents=[agent], batch_records=7))

    assert all(agent.balance[f"ref-u{u}"] == 1 for u in range(40))
    c = counts(s)
    assert c["in"] == len(events) == c["processed"] + c["dead"] + c.get("duplicate", 0)
    assert c["dead"] == c["dead:insufficient_points"] == 40
    dead = read_records(s, s.dead_letter_topic)
    mine = [(codec.loads(v), dict(h)) for _, _, v, h in dead]
    assert sorted(ev["event_id"] for ev, _ in mine) == sorted(f"rd-{u}-1" for u in range(40))
    for ev, headers in mine:
        assert ev["type"] == "points_redeem" and ev["points"] == 4
        assert headers["reason"] == b"insufficient_points"
        assert headers["detail"] == b"balance 2 < 4"
        assert headers["source"].decode().endswith(f"/event/{ev['event_id']}")


def test_a_batch_applied_again_after_its_fence_refuses_nothing_twice(infra: Infra) -> None:
    """A second pass over the same log finds the fence: no event is applied, none refused
    again, the counts stay."""
    s = infra.settings(agents="event_stats")
    replay_lines(s, [codec.dumps(ev) for ev in _events(5)])
    run_async(process_topic(s, agents=[Balances()]))
    before = counts(s)
    again = Balances()
    run_async(process_topic(s, agents=[again]))
    assert counts(s) == before and before["dead:insufficient_points"] == 5
    assert not again.balance
    assert len(read_records(s, s.dead_letter_topic)) == 5
