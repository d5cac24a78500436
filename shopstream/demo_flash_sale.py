"""The demo's flash sales: three sales created through the API, and shoppers who claim, order
and pay through it, so the flash-sale panel and alerts move as in a real promotion.

Every claim goes through ``POST /v1/flash-sales/{id}/claims``; most reservations are then
ordered and paid with events posted to ``POST /v1/events`` (the stream side confirms or
releases them), the rest expire after ``RESERVATION_TTL_S``.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.core.timeunits import HOUR_MS


@dataclass(frozen=True)
class DemoSale:
    sale_id: str
    sku: str
    stock: int
    price: int


#: Stock sized for the claim rate: the phone sells out within minutes, the TV within the hour.
SALES = (
    DemoSale("d11-phone", "flash-phone", 600, 399_900),
    DemoSale("d11-earbuds", "flash-earbuds", 4_000, 59_900),
    DemoSale("d11-tv", "flash-tv", 10_000, 299_900),
)
#: Claims per second over all sales.
CLAIMS_PER_S = 10.0
#: Share of reservations ordered (the rest expire), and of those orders paid successfully.
ORDER_SHARE = 0.85
PAID_SHARE = 0.9
#: Short, so unordered reservations visibly come back to the available stock.
RESERVATION_TTL_S = 120
#: How long each sale runs from the demo's start.
SALE_HOURS = 24


class FlashShoppers:
    """Creates the demo's sales through the API, then claims, orders and pays until ``stop``."""

    def __init__(self, settings: Settings, host: str, port: int, users: int,
                 stop: threading.Event, seed: int = 11) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.users = users
        self.stop = stop
        self.rng = random.Random(seed)

    def _call(self, method: str, path: str, body: Any, key: str | None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            conn.request(method, path, body=codec.dumps(body), headers=headers)
            resp = conn.getresponse()
            return resp.status, codec.loads(resp.read() or b"{}")
        finally:
            conn.close()

    def create_sales(self) -> None:
        """Each sale, live from now; one left from an earlier run (409 exists) is kept."""
        now = int(time.time() * 1000)
        for sale in SALES:
            self._call("POST", "/v1/flash-sales", {
                "sale_id": sale.sale_id, "sku": sale.sku, "stock": sale.stock,
                "per_user_limit": 1, "starts_at": now - 1_000,
                "ends_at": now + SALE_HOURS * HOUR_MS,
                "reservation_ttl_s": RESERVATION_TTL_S,
            }, self.settings.admin_token)

    def shop_once(self) -> None:
        """One shopper claims a unit of a sale, then (mostly) orders and pays for it."""
        r = self.rng
        sale = r.choice(SALES)
        user = f"u{r.randrange(self.users)}"
        ingest = self.settings.ingest_key
        status, answer = self._call("POST", f"/v1/flash-sales/{sale.sale_id}/claims",
                                    {"user_id": user, "qty": 1}, ingest)
        if status != 200 or r.random() >= ORDER_SHARE:
            return
        reservation = answer["reservation_id"]
        order_id = f"fo-{reservation}"
        now = int(time.time() * 1000)
        common = {"user_id": user, "ts": now, "channel": "push", "campaign": "flash-10am"}
        order = {**common, "event_id": f"{order_id}:order", "type": "order_submit",
                 "order_id": order_id, "amount": sale.price, "reservation_id": reservation,
                 "items": [{"sku": sale.sku, "qty": 1, "price": sale.price}]}
        paid = r.random() < PAID_SHARE
        payment = {**common, "event_id": f"{order_id}:payment", "type": "payment",
                   "order_id": order_id, "amount": sale.price,
                   "status": "success" if paid else "failed"}
        self._call("POST", "/v1/events", [order, payment], ingest)

    def run(self) -> None:
        """Wait for the API, create the sales, shop at ``CLAIMS_PER_S`` until stopped."""
        while not self.stop.is_set():
            try:
                self.create_sales()
                break
            except OSError:
                self.stop.wait(0.5)
        while not self.stop.wait(1 / CLAIMS_PER_S):
            try:
                self.shop_once()
            except OSError:
                self.stop.wait(1.0)
