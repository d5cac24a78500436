"""Reading the customer loop back for the API: tier populations, one customer, service tasks."""

from __future__ import annotations

from typing import Any, cast

from shopstream.agents.customers import ledger
from shopstream.agents.customers.config import (
    DORMANT_RECALL,
    REPURCHASE_REMINDER,
    REVIEW_REMINDER,
    CustomersConfig,
)
from shopstream.core import codec
from shopstream.kafka_io.partitioner import partition_for
from shopstream.sinks.customers import users as stored_users
from shopstream.sinks.customers.keys import customer_keys
from shopstream.sinks.redis_state import Redis

#: A task's states, in the order of its life.
TASK_STATES = ("open", "escalated", "acked")


async def tier_population(redis: Redis, app: str, partitions: int, cfg: CustomersConfig
                          ) -> dict[str, Any]:
    """Known users per tier, summed over the partitions, in band order."""
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.hgetall(customer_keys(app, p).tiers)
        rows = await pipe.execute()
    users = {t.name: 0 for t in cfg.tiers}
    for row in rows:
        for tier, n in row.items():
            if tier.decode() in users:
                users[tier.decode()] += int(n)
    return {"tiers": [{"tier": t, "users": n} for t, n in users.items()]}


def pending(st: dict[str, Any]) -> list[dict[str, Any]]:
    """The user's armed reminders, dormant recall and deferred pushes, soonest first."""
    out: list[dict[str, Any]] = [{"rule": REVIEW_REMINDER, "due": due, "order_id": oid}
                                 for oid, due in st.get("rr", {}).items()]
    out += [{"rule": REPURCHASE_REMINDER, "due": due, "sku": sku, "order_id": oid}
            for sku, (due, oid, _) in st.get("rp", {}).items()]
    if "dz" in st:
        out.append({"rule": DORMANT_RECALL, "due": st["dz"]})
    out += [{"rule": rule, "due": due, "push_id": pid, "deferred": True}
            for pid, (due, rule) in st.get("df", {}).items()]
    return sorted(out, key=lambda x: (x["due"], x["rule"], codec.dumps(x)))


async def customer_view(redis: Redis, app: str, partitions: int, user: str
                        ) -> dict[str, Any] | None:
    """One customer as of its partition's last batch; None for a user never seen."""
    p = partition_for(user, partitions)
    st = await stored_users.read(redis, app, p, user)
    if st is None:
        return None
    spend, orders = ledger.spend(st)
    tids = sorted(st.get("tk", {}))
    docs = cast(list[bytes | None], await redis.hmget(customer_keys(app, p).tasks, tids)) \
        if tids else []
    tasks = sorted((codec.loads(d) for d in docs if d is not None),
                   key=lambda t: (t["opened"], t["task_id"]))
    return {"user_id": user, "tier": st["tier"], "spend_fen": spend, "orders": orders,
            "points": st.get("pts", 0), "points_forgiven": st.get("pf", 0),
            "last_seen": st.get("ls"), "referrer_id": st.get("ref"),
            "pending": pending(st), "tasks": tasks}


async def task_list(redis: Redis, app: str, partitions: int, status: str | None, limit: int,
                    offset: int) -> dict[str, Any]:
    """Service tasks (of ``status`` when given), oldest first."""
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.hvals(customer_keys(app, p).tasks)
        rows = await pipe.execute()
    tasks = [t for row in rows for t in map(codec.loads, row)
             if status is None or t["status"] == status]
    tasks.sort(key=lambda t: (t["opened"], t["task_id"]))
    return {"total": len(tasks), "tasks": tasks[offset:offset + limit]}


async def find_task(redis: Redis, app: str, partitions: int, task_id: str
                    ) -> dict[str, Any] | None:
    """A task by id, whichever partition holds it."""
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.hget(customer_keys(app, p).tasks, task_id)
        rows = await pipe.execute()
    found = [codec.loads(r) for r in rows if r is not None]
    return found[0] if found else None
