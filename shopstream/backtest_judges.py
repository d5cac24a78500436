"""The event-time judges (anomalies, ROAS, stock) brought to the end of a backtest's log.

The workers' judges step every few seconds and a fixed number of minutes at a time; once every
event is applied, nothing can change which minutes are final, so the backtest steps each
selected judge itself, under the same lease as the workers' ticks, until it has nothing left,
then sends its alert outbox. The steps are the judges' own: the verdicts are those the
workers would reach, only sooner.
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


async def finish_all(settings: Settings, redis: Redis) -> None:
    for ticks in judges(settings, redis):
        await finish(ticks)
