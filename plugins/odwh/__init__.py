"""odwh: overdraft-risk data platform (Airflow pipeline + PostgreSQL analytics warehouse)."""

__version__ = "0.1.0"
