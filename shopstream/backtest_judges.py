"""The event-time judges (anomalies, ROAS, stock) brought to the end of a backtest's log.

A replay runs partitions at their own pace, and a judge counts a minute final once every
partition that applied anything is past it: one that has applied nothing yet is not waited
for. So the backtest holds the judges' leases while the log is applied (the workers' ticks
find them taken and skip), and once every event is applied, when nothing can change which
minutes are final, steps each selected judge itself, under the same lease, until it has
nothing left, then sends its alert outbox. The steps are the judges' own: the verdicts are
those of a live run whose partitions kept pace, whatever the replay's interleaving.
"""

from __future__ import annotations

import asyncio

from shopstream.agents.ads.judge import RoasJudge
from shopstream.agents.ads.rules import parse_config as parse_ads
from shopstream.agents.anomalies.agent import AnomalyJudge
from shopstream.agents.anomalies.rules import parse_config as parse_anomalies
from shopstream.agents.judging import JudgeTicks
from shopstream.agents.lateness import allowed_lateness
from shopstream.agents.registry import selected
from shopstream.agents.stock.agent import StockHealth
from shopstream.agents.stock.rules import parse_config as parse_stock
from shopstream.core.settings import Settings
from shopstream.sinks.locks import lease
from shopstream.sinks.redis_state import Redis

#: How long to wait for a worker's step to release the lease before asking again.
LEASE_RETRY_S = 0.1
#: A judge holds its lease this long per step here (a step reads and writes a few minutes).
STEP_LEASE_MS = 60_000
#: How long the leases are held while the log is applied (released as soon as it is).
HOLD_MS = 24 * 3_600_000
#: The holder's token in the lease keys (any value: nobody else releases a lease it did not take).
HOLDER = "backtest"


def judges(settings: Settings, redis: Redis) -> list[JudgeTicks]:
    """The ticks (lease, step, send) of the judges ``settings`` selects."""
    names = selected(settings)
    out: list[JudgeTicks] = []
    if "anomalies" in names:
        out.append(AnomalyJudge(settings, parse_anomalies(settings.sections), redis).ticks)
    if "ads" in names:
        out.append(RoasJudge(settings, parse_ads(settings.sections),
                             allowed_lateness(settings.sections), redis).ticks)
    if "stock" in names:
        out.append(StockHealth(settings, parse_stock(settings.sections), redis).ticks)
    return out


async def finish(ticks: JudgeTicks) -> int:
    """Step until a step moves nothing, then send the outbox; returns the steps that moved."""
    moved = 0
    while True:
        async with lease(ticks.redis, ticks.lease_key, STEP_LEASE_MS) as held:
            if held:
                if not await ticks.step():
                    break
                moved += 1
                continue
        await asyncio.sleep(LEASE_RETRY_S)
    await ticks.send()
    return moved


async def hold_all(settings: Settings, redis: Redis) -> None:
    """Take every selected judge's lease until ``finish_all`` (or HOLD_MS)."""
    for ticks in judges(settings, redis):
        await redis.set(ticks.lease_key, HOLDER, px=HOLD_MS)


async def finish_all(settings: Settings, redis: Redis) -> None:
    """Release what ``hold_all`` held and bring every selected judge to the log's end."""
    for ticks in judges(settings, redis):
        if await redis.get(ticks.lease_key) == HOLDER.encode():
            await redis.delete(ticks.lease_key)
        await finish(ticks)
