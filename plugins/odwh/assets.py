"""The Airflow assets the DAGs exchange, each defined once (both DAG files import them from here).

Kept free of heavy imports: the DAG processor imports this module every time it parses a DAG file.
"""

from __future__ import annotations

from airflow.sdk import Asset

RAW_LOADED = Asset("odwh://warehouse/raw", group="odwh")
"""``odwh_daily`` loaded at least one business date into ``raw``."""

MONTH_LOADED = Asset("odwh://warehouse/month-loaded", group="odwh")
"""A month's every business date is loaded and it has no publication as recent as its data; the event's
``extra["months"]`` lists those month ends. Schedules ``odwh_month_end``."""

PUBLISHED = Asset("odwh://reports/month-published", group="odwh")
"""``odwh_month_end`` gated and published its months."""
