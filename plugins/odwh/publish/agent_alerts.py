"""The daily agent alert list per branch (rulebook H, OD policy §12.4) from ``marts.fct_agent_alerts``.

An alert is on the list of day ``d`` when it was open that day: opened on or before ``d`` and not closed by
then (``closed_on`` is the first normal day, so an alert closed on ``d`` is off the list). Its state is the
state of that day, not the mart's latest: escalated once ``escalated_on <= d`` (then assigned to the Regional
Manager), open otherwise; days open counts ``opened_on`` .. ``d``. Every branch of ``marts.dim_branches`` gets
a file, with only the header when it has no alert: an empty list is an answer, a missing file is not.
"""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

import pandas as pd
import psycopg
from psycopg import sql

from odwh import i18n
from odwh.i18n import N_
from odwh.publish import details, labels
from odwh.publish.data import MARTS, columns_of, frame, records, require
from odwh.publish.workbook import Book, Column, new_workbook, save, sheet_name, write_table

TITLE = N_("Daily agent alert list")
ALERT_COLUMNS = (
    "customer_id",
    "od_account_id",
    "officer_id",
    "reason",
    "opened_on",
    "last_abnormal_on",
    "closed_on",
    "days_open",
    "escalated",
    "escalated_on",
)
FIELDS = (
    Column("status", 13, wrap=True),
    Column("assigned_to_id", 11, wrap=True),
    Column("officer_id", 10, wrap=True),
    Column("customer_id", 11, wrap=True),
    Column("od_account_id", 12, wrap=True),
    Column("reason", 13, wrap=True),
    Column("detail", 24, wrap=True),
    Column("opened_on", 11, number_format="yyyy-mm-dd"),
    Column("last_abnormal_on", 11, number_format="yyyy-mm-dd"),
    Column("days_open", 7, number_format="0"),
    Column("escalated_on", 11, number_format="yyyy-mm-dd"),
)

ALERTS_SQL = """
select a.customer_id, a.od_account_id, a.officer_id, {branch} as branch_code, {detail} as detail,
       {params} as detail_params, {currency} as currency, a.reason,
       a.opened_on, a.last_abnormal_on, %(d)s::date - a.opened_on + 1 as days_open,
       case when a.escalated_on <= %(d)s then a.escalated_on end as escalated_on,
       case when a.escalated_on <= %(d)s then 'ESCALATED' else 'OPEN' end as status,
       case when a.escalated_on <= %(d)s then coalesce({regional}, a.officer_id) else a.officer_id end
           as assigned_to_id
from marts.fct_agent_alerts a {join}
where a.opened_on <= %(d)s and (a.closed_on is null or a.closed_on > %(d)s)
order by branch_code, status, a.opened_on, a.customer_id
"""


def write_agent_alert_lists(conn: psycopg.Connection, business_date: date, out_dir: Path) -> list[Path]:
    """``out_dir/<branch_code>.csv`` and ``.xlsx``: the alerts open or escalated on ``business_date``."""
    alerts = open_alerts(conn, business_date)
    branches = set(alerts["branch_code"].dropna())
    if columns_of(conn, MARTS, "dim_branches"):
        branches |= {r[0] for r in conn.execute("select branch_code from marts.dim_branches")}
    out_dir.mkdir(parents=True, exist_ok=True)
    when = datetime.combine(business_date, time())
    written: list[Path] = []
    for code in sorted(branches):
        rows = alerts[alerts["branch_code"] == code]
        written.append(_write_csv(rows, out_dir / f"{code}.csv"))
        written.append(save(_workbook(rows, code, business_date), out_dir / f"{code}.xlsx", when))
    return written


def open_alerts(conn: psycopg.Connection, business_date: date) -> pd.DataFrame:
    """The alerts open on the date, with their state of that day."""
    present = require(conn, "fct_agent_alerts", ALERT_COLUMNS)
    has = set(present)
    officers = columns_of(conn, MARTS, "dim_officers")
    join = (
        sql.SQL("left join marts.dim_officers o on o.officer_id = a.officer_id") if officers else sql.SQL("")
    )
    if "branch_code" in has:
        branch: sql.Composable = sql.SQL("a.branch_code")
    else:
        branch = sql.SQL("o.branch_code") if officers else sql.SQL("null::text")
    if "regional_manager_id" in has:
        regional: sql.Composable = sql.SQL("a.regional_manager_id")
    else:
        regional = sql.SQL("o.regional_manager_id") if "regional_manager_id" in officers else sql.SQL("null")
    query = sql.SQL(ALERTS_SQL).format(
        branch=branch,
        detail=_optional(has, "detail", "text"),
        params=_optional(has, "detail_params", "jsonb"),
        currency=_optional(has, "currency", "text"),
        regional=regional,
        join=join,
    )
    alerts = frame(conn, query, {"d": business_date})
    alerts["status"] = alerts["status"].map(lambda s: labels.bilingual(labels.ALERT_STATUS[s]))
    alerts["detail"] = [
        details.bilingual("AGENT_ALERT", params, currency, detail)
        for params, currency, detail in zip(
            alerts["detail_params"], alerts["currency"], alerts["detail"], strict=True
        )
    ]
    return alerts


def _optional(has: set[str], name: str, pg_type: str) -> sql.Composable:
    """The alert's column, or a typed null where the mart predates it."""
    if name in has:
        return sql.SQL("a.{}").format(sql.Identifier(name))
    return sql.SQL("null::{}").format(sql.SQL(pg_type))


def _workbook(rows: pd.DataFrame, branch_code: str, business_date: date) -> Book:
    title = f"{labels.bilingual(TITLE)} — {i18n.in_both(business_date)} — {branch_code}"
    book = new_workbook(title)
    name = sheet_name(f"{branch_code} {business_date.isoformat()}", set())
    write_table(book, name, title, FIELDS, records(rows), footer=title)
    return book


def _write_csv(rows: pd.DataFrame, path: Path) -> Path:
    out = rows.reindex(columns=[c.field for c in FIELDS])
    out.columns = [c.header for c in FIELDS]
    out.to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\n")
    return path
