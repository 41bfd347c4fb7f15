"""The functions' logger and metrics (Powertools): constant messages and keys, one metric per outcome."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()
