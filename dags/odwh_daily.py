"""odwh_daily: one run drains every complete pending business date of the landing location.

check (manifest + Great Expectations contract suite) -> load (COPY, one transaction per date) -> build the
daily dbt models -> publish the day's agent alert lists and announce the months whose every date is loaded
(asset ``MONTH_LOADED``, emitted only when there is such a month; it schedules ``odwh_month_end``). A refused
date stops ingestion there; the run fails after the valid dates are built.
Retries come from ``[core] default_task_retries`` (2 in the cluster deployment: a lost worker's task reruns and
resumes; 0 for ``odwh run``, which fails fast), docs/decisions/0018.
Logic lives in the ``odwh`` package; this file only wires tasks and schedule.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Param, dag, task
from odwh.assets import MONTH_LOADED, RAW_LOADED

# After the core system's end-of-day extract (cron, Asia/Phnom_Penh); an institution whose extract lands later sets
# ODWH_DAILY_SCHEDULE, or "none" when its own end-of-day job triggers the run (REST API). Reruns are harmless.
_schedule = os.environ.get("ODWH_DAILY_SCHEDULE", "").strip() or "0 6 * * *"
DAILY_SCHEDULE = None if _schedule.lower() == "none" else _schedule


@dag(
    dag_id="odwh_daily",
    schedule=DAILY_SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Phnom_Penh"),
    catchup=False,
    max_active_runs=1,
    params={"landing_url": Param("", type="string", description="Landing URL; empty means ODWH_LANDING_URL")},
    tags=["odwh"],
)
def odwh_daily() -> None:
    @task(outlets=[RAW_LOADED])
    def check_and_load(params: dict | None = None) -> dict:
        from odwh import pipeline

        source = (params or {}).get("landing_url") or pipeline.landing_url()
        return pipeline.ingest(pipeline.warehouse_url_from_airflow(), source).to_json()

    @task
    def build_daily_models() -> None:  # after the load; builds whenever the models are behind meta.loads
        from odwh import pipeline

        pipeline.build_daily(pipeline.warehouse_url_from_airflow())

    @task
    def publish_agent_alerts(report: dict) -> list[str]:
        from odwh import pipeline

        url = pipeline.warehouse_url_from_airflow()
        return pipeline.publish_agent_alerts(url, pipeline.IngestReport.from_json(report))

    @task(outlets=[MONTH_LOADED])
    def announce_loaded_months(*, outlet_events=None) -> list[str]:
        from odwh import pipeline

        months = pipeline.months_ready_to_close(pipeline.warehouse_url_from_airflow())
        if not months:  # a skipped task emits no asset event: odwh_month_end only starts for a ready month
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException("no month is ready to close")
        outlet_events[MONTH_LOADED].extra = {"months": months}
        return months

    @task(retries=0)  # a refused date needs a corrected delivery, not a retry
    def fail_if_refused(report: dict) -> None:
        from odwh import pipeline

        pipeline.raise_if_refused(pipeline.IngestReport.from_json(report))

    report = check_and_load()
    built = build_daily_models()
    report >> built
    built >> publish_agent_alerts(report)
    built >> announce_loaded_months()
    built >> fail_if_refused(report)


odwh_daily()
