"""Ad economics: spend, clicks, attribution and ROAS alerts per campaign (docs/ads.md)."""
