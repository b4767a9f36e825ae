"""Accuracy-aware searches: int8 settings and fp32 fallback nodes, fp16 overflow blocking."""
