"""Stock health: on hand, days of cover, safety stock, overstock and return rate per SKU."""
