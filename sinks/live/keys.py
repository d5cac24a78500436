"""Redis key names of the live-room agent (shared with its query).

All under the partition tag ``{pN}``: a room's viewers are spread over the partitions by user,
so each partition holds its shard of every room and a query sums the shards (a user is in one
partition only, so counts of distinct viewers add up exactly).
- ``{app}:{pN}:live:u:<user_id>`` string: the user's open views and last closed view
  (``agents/live/rules.encode_user``).
- ``{app}:{pN}:live:r:<room_id>`` hash: ``start``/``end`` (latest live_start/live_end time),
  ``now`` (open views) and per minute ``<measure>|<minute ms>`` counters (``agents/live/rules``).
- ``{app}:{pN}:live:seen:<room_id>`` set: users who joined (unique viewers, exact).
- ``{app}:{pN}:live:buyers:<room_id>`` set: users with an order attributed to the room.
- ``{app}:{pN}:live:open:<room_id>`` hash: user -> join time of each open view (what
  ``live_end`` closes).
- ``{app}:{pN}:live:idle`` sorted set: member ``[room, user]`` (JSON), score the view's last
  activity: the views an advancing watermark may drop as idle.
- ``{app}:{pN}:live:onair`` sorted set: rooms on air (score: the latest event of the room in
  this partition; rooms silent for ``live.on_air_silence_ms`` of this partition's event time
  are removed).
- ``{app}:{pN}:live:watching`` sorted set: rooms with open views here (score: how many).
- ``{app}:{pN}:live:rooms`` hash: every room seen -> the time of its first event here.
- ``{app}:{pN}:live:o:<order_id>`` string: the room an unpaid order is attributed to.
- ``{app}:{pN}:live:late`` integer: live events ignored as too late.
"""

from __future__ import annotations

from shopstream.sinks import keys


def user_key(app_id: str, partition: int, user_id: str) -> str:
    return f"{app_id}:{keys.tag(partition)}:live:u:{user_id}"


def room_key(app_id: str, partition: int, room_id: str) -> str:
    return f"{app_id}:{keys.tag(partition)}:live:r:{room_id}"


def seen_key(app_id: str, partition: int, room_id: str) -> str:
    return f"{app_id}:{keys.tag(partition)}:live:seen:{room_id}"


def buyers_key(app_id: str, partition: int, room_id: str) -> str:
    return f"{app_id}:{keys.tag(partition)}:live:buyers:{room_id}"


def open_key(app_id: str, partition: int, room_id: str) -> str:
    return f"{app_id}:{keys.tag(partition)}:live:open:{room_id}"


def idle_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:live:idle"


def onair_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:live:onair"


def watching_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:live:watching"


def rooms_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:live:rooms"


def order_key(app_id: str, partition: int, order_id: str) -> str:
    return f"{app_id}:{keys.tag(partition)}:live:o:{order_id}"


def late_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:live:late"
