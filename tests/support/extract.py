"""Tiny, valid core-banking deliveries for tests: 2-3 rows per file, consistent keys, a correct manifest.

    folder = write_delivery(tmp_path, date(2026, 10, 1))
    folder = write_delivery(tmp_path, day, mutate=lambda rows: rows["od_balances.csv"][0].update(amount="x"))

``mutate(rows)`` edits ``rows`` (file name -> list of dicts, one per data row, contract column order) before
anything is written: change values, delete a key from every row to drop a column, add keys for extra
columns, append rows, or ``del rows[name]`` to omit a file. ``edit_folder(folder)`` runs after the CSVs are
written and before the manifest (e.g. write raw bytes); ``manifest=False`` leaves the delivery incomplete.
The manifest is computed from the files as written, independently of ``odwh.landing``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

from odwh import contract

Rows = dict[str, list[dict[str, str]]]


def valid_rows(business_date: date) -> Rows:
    """One day's data that follows every contract rule (includes a same-day reversal)."""
    d = business_date.isoformat()
    t = f"T{business_date:%Y%m%d}"
    # one line per row, columns in contract order (no value holds a comma)
    table = {
        "branches.csv": """
            B01,Phnom Penh Main,Phnom Penh,R1,Central
            B02,Battambang,Battambang,R2,North-West""",
        "officers.csv": """
            O01,Sok Dara,RM,B01,
            O02,Chan Vibol,CM,B01,O01
            O03,Keo Srey,CM,B02,O01""",
        "customers.csv": """
            C01,AGENT,INDIVIDUAL,Lim Heng,010203040,+85512345678,B01,O02,2024-01-15,2023-05-01
            C02,SME,LEGAL_ENTITY,Mekong Rice Co,,,B02,O03,,2022-11-30
            C03,RETAIL,INDIVIDUAL,Pich Sothea,020304050,,B01,O02,,2025-02-28""",
        "od_accounts.csv": """
            OD01,C01,SA01,USD,5000.00,2025-01-10,2025-01-15,2026-12-31,0.015,0.01,0.02,0.005,NONE,,,AGENT_LIQUIDITY,false,ACTIVE,
            OD02,C02,,KHR,20000000,2025-03-01,2025-03-05,2027-03-04,0.012,0.01,0.02,0.005,FIXED_DEPOSIT,30000000,FD01,WORKING_CAPITAL,true,ACTIVE,""",
        "od_transactions.csv": f"""
            {t}-1,OD01,{d},DRAWDOWN,DEBIT,100.00,AGENT,
            {t}-2,OD02,{d},REPAYMENT,CREDIT,250000,COUNTER,
            {t}-3,OD01,{d},REVERSAL,CREDIT,100.00,SYSTEM,{t}-1""",
        "od_balances.csv": f"""
            OD01,{d},1200.50,12.34,0
            OD02,{d},15000000,180000,5000""",
        "loans.csv": """
            L01,C02,SME,KHR,2024-06-01,24,8000000,0,TRADE,ACTIVE,
            L02,C03,OD_CONVERTED,USD,2025-09-01,12,900.00,35,,ACTIVE,""",
        "fixed_deposits.csv": """
            FD01,C02,KHR,30000000,2024-01-01,2027-01-01,true,ACTIVE
            FD02,C03,USD,1000.00,2025-06-01,2026-06-01,false,CLOSED""",
        "agent_liquidity.csv": f"""
            C01,{d},3450.75""",
        "fx_rates.csv": f"""
            {d},KHR,1
            {d},USD,4105
            {d},THB,118.25""",
        "loan_applications.csv": f"""
            A{t}-1,C03,2026-09-20,{d},APPROVED,USD,1500.00,TRADE,true,true,LOW,true,false,0.35,true
            A{t}-2,C02,2026-09-25,,,KHR,4000000,AGRICULTURE,true,false,,,,,false""",
        "ppi_surveys.csv": f"""
            S{t}-1,C01,2026-06-15,2026,45,0.23
            S{t}-2,C03,2026-06-16,2026,61.5,0.085""",
        "complaints.csv": f"""
            K{t}-1,C02,{d},PHONE,FEES,""",
    }
    return {name: _records(name, lines) for name, lines in table.items()}


def _records(name: str, lines: str) -> list[dict[str, str]]:
    columns = contract.FILES_BY_NAME[name].column_names
    return [dict(zip(columns, line.strip().split(","), strict=True)) for line in lines.strip().splitlines()]


def write_delivery(
    landing: Path,
    business_date: date,
    *,
    mutate: Callable[[Rows], None] | None = None,
    edit_folder: Callable[[Path], None] | None = None,
    manifest: bool = True,
) -> Path:
    """Write ``landing/<date>/`` (every file + manifest) and return the folder."""
    rows = valid_rows(business_date)
    if mutate:
        mutate(rows)
    folder = landing / business_date.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    for name, records in rows.items():
        (folder / name).write_bytes(csv_bytes(name, records))
    if edit_folder:
        edit_folder(folder)
    if manifest:
        write_manifest(folder, business_date)
    return folder


def csv_bytes(name: str, records: list[dict[str, str]]) -> bytes:
    """Header = contract columns still present in the rows, then any extra keys, in first-seen order."""
    spec = contract.FILES_BY_NAME.get(name)
    seen = dict.fromkeys(k for r in records for k in r)
    header = [c for c in (spec.column_names if spec else ()) if c in seen or not records]
    header += [k for k in seen if k not in header]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([r.get(c, "") for c in header] for r in records)
    return out.getvalue().encode("utf-8")


def write_manifest(folder: Path, business_date: date) -> dict[str, object]:
    """A correct ``_manifest.json`` for the files now in ``folder``; returns the JSON written."""
    files: dict[str, dict[str, object]] = {}
    for path in sorted(folder.glob("*.csv")):
        data = path.read_bytes()
        records = list(csv.DictReader(io.StringIO(data.decode("utf-8", errors="replace"))))
        entry: dict[str, object] = {"rows": len(records), "sha256": hashlib.sha256(data).hexdigest()}
        spec = contract.FILES_BY_NAME.get(path.name)
        if spec and spec.control_total:
            entry["control_total"] = str(
                sum((_decimal(r.get(spec.control_total)) for r in records), Decimal(0))
            )
        files[path.name] = entry
    document = {
        "extract_version": contract.EXTRACT_VERSION,
        "business_date": business_date.isoformat(),
        "source": "core-banking",
        "files": files,
    }
    (folder / contract.MANIFEST_NAME).write_text(json.dumps(document, indent=2))
    return document


def _decimal(value: str | None) -> Decimal:
    """Null and non-numbers count 0 (tests of bad numbers still want a manifest)."""
    try:
        return Decimal(value) if value else Decimal(0)
    except ArithmeticError:
        return Decimal(0)
