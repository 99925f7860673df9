"""odwh_month_end: close every month whose last business date is loaded: build the month-end models, run the
quality gate, and publish the month's reports (review lists, board pack, dashboard, data quality, manifest).

Scheduled on data, not on the clock: ``odwh_daily`` updates the ``MONTH_LOADED`` asset only when a month is
ready to close, and the event's ``extra["months"]`` names the months this run closes. A month whose gate fails
is not published (the previous publication stays) and the run fails; it is offered again only once a newer load
of a date it is built from arrives (``pipeline.months_ready_to_close``).
Retries come from ``[core] default_task_retries``, as in ``odwh_daily``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task
from odwh.assets import MONTH_LOADED, PUBLISHED


@dag(
    dag_id="odwh_month_end",
    schedule=[MONTH_LOADED],
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Phnom_Penh"),
    catchup=False,
    max_active_runs=1,
    params={
        "months": Param([], type="array", description="Month ends to close; empty means every ready month")
    },
    tags=["odwh"],
)
def odwh_month_end() -> None:
    @task
    def months_to_close(params: dict | None = None, triggering_asset_events=None) -> list[str]:
        """Explicit ``months`` (a manual rerun or republication), else the months the triggering events
        announced that are still ready (an event queued behind a run that closed them is stale), else every
        ready month (a manual run without ``months``)."""
        from odwh import pipeline

        if months := (params or {}).get("months"):
            return months
        events = (triggering_asset_events or {}).get(MONTH_LOADED, [])
        announced = pipeline.months_announced([event.extra for event in events])
        return pipeline.still_ready(pipeline.warehouse_url_from_airflow(), announced or None)

    @task
    def build_month_end_models(months: list[str], params: dict | None = None) -> int | None:
        """The newest load the models are built over: the gate records it (which data its verdict covers). Months
        named by hand are built again unless this close's own catch-up of the daily models just built them;
        announced ones only when the daily build did not take them in."""
        from odwh import pipeline

        named = bool((params or {}).get("months"))
        return pipeline.build_month_end(pipeline.warehouse_url_from_airflow(), months, rebuild=named)

    @task(outlets=[PUBLISHED])
    def gate_and_publish(months: list[str], loads_through: int | None) -> list[dict]:
        from odwh import pipeline

        return pipeline.close_months(pipeline.warehouse_url_from_airflow(), months, loads_through)

    @task(retries=0)  # a failed gate needs new data, not a retry
    def fail_if_not_published(outcomes: list[dict]) -> None:
        from odwh import pipeline

        pipeline.raise_if_unpublished(outcomes)

    months = months_to_close()
    fail_if_not_published(gate_and_publish(months, build_month_end_models(months)))


odwh_month_end()
