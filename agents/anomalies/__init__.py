"""The anomaly judge: episodes in the funnels' conversion and the pulse's series."""
