"""Helpers shared by the test modules (no test module imports another one; they all import from here).

- ``database``: a throw-away migrated database (:func:`database.throwaway_database`) and queries;
  the ``fresh_db`` fixture of ``tests/conftest.py`` is built on it.
- ``dbt``: :func:`dbt.build`, the one way tests build models.
- ``raw``: :func:`raw.deliver`, the one writer of raw rows (as the loader writes them), and the scripted
  inputs that use it: :class:`raw.ScriptedAccounts` and :class:`raw.ScriptedPortfolio`.
- ``extract``: tiny valid core-banking deliveries (CSV files and manifest) for the landing and ingest tests.
- ``marts``: published marts created from the dbt contracts, with a small scripted month for the reports.
- ``fonts``: a fontconfig file that hides every Khmer font (the reports must carry their own).
- ``airflow``: `odwh run` in a subprocess with its own Airflow home.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
