"""Branch-scoped readers: which database users may read which branches' rows of the marts.

A branch-scoped reader is a login user granted ``odwh_branch_reader`` with rows in ``meta.branch_access``; the
row-level security policies of every mart table carrying ``branch_code`` (``meta.secure_relation``, created by
the migration), and the row filter of a mart view (``fct_od_daily``: decision 0041), show it only those
branches. Run as the warehouse's owner (``odwh access grant/revoke/show``).
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql

from odwh.warehouse import BRANCH_READER, PUBLISHER, READER


class AccessError(RuntimeError):
    pass


def grant(conn: psycopg.Connection, user: str, branches: Sequence[str]) -> None:
    """Let ``user`` read ``branches``' rows (added to any it had); refused for a user who would see more."""
    codes = _branch_codes(branches)
    _check_scopable(conn, user)
    known = _known_branches(conn)  # before the first delivery there is nothing to check against
    if known and (unknown := sorted(set(codes) - known)):
        raise AccessError(f"unknown branch code(s) {', '.join(unknown)}: not in the latest branches snapshot")
    conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(BRANCH_READER), sql.Identifier(user)))
    with conn.cursor() as cur:
        cur.executemany(
            "insert into meta.branch_access (user_name, branch_code) values (%s, %s) on conflict do nothing",
            [(user, code) for code in codes],
        )
    conn.commit()


def revoke(conn: psycopg.Connection, user: str, branches: Sequence[str] = ()) -> list[str]:
    """Withdraw ``branches`` (all when empty) from ``user``; the role goes with its last branch.

    Returns the branches the user still reads.
    """
    codes = _branch_codes(branches) if branches else None
    conn.execute(
        "delete from meta.branch_access where user_name = %s and (%s::text[] is null or branch_code = any(%s))",
        (user, codes, codes),
    )
    left = branches_of(conn, user)
    if not left and _role_exists(conn, user):
        conn.execute(sql.SQL("revoke {} from {}").format(sql.Identifier(BRANCH_READER), sql.Identifier(user)))
    conn.commit()
    return left


def branches_of(conn: psycopg.Connection, user: str) -> list[str]:
    rows = conn.execute("select branch_code from meta.branch_access where user_name = %s order by 1", (user,))
    return [code for (code,) in rows]


def show(conn: psycopg.Connection) -> list[tuple[str, list[str]]]:
    """Every branch-scoped reader and its branches, by user name."""
    rows = conn.execute(
        """
        select u.rolname, coalesce(array_agg(a.branch_code order by a.branch_code)
                                   filter (where a.branch_code is not null), '{}')
        from pg_roles u
        left join meta.branch_access a on a.user_name = u.rolname
        where pg_has_role(u.oid, %s, 'member') and not u.rolsuper and u.rolname <> %s
           or a.user_name is not null
        group by 1 order by 1
        """,
        (BRANCH_READER, BRANCH_READER),
    )
    return [(user, list(codes)) for user, codes in rows]


def table(rows: list[tuple[str, list[str]]]) -> str:
    if not rows:
        return "no branch-scoped reader (odwh access grant USER --branches B01,B02)"
    width = max(len("user"), *(len(user) for user, _ in rows))
    lines = [f"{'user':<{width}}  branches"]
    lines += [f"{user:<{width}}  {', '.join(codes) or '(none: sees no row)'}" for user, codes in rows]
    return "\n".join(lines)


def _branch_codes(branches: Sequence[str]) -> list[str]:
    codes = sorted({code.strip() for item in branches for code in item.split(",") if code.strip()})
    if not codes:
        raise AccessError("name at least one branch code, e.g. --branches B01,B02")
    return codes


def _role_exists(conn: psycopg.Connection, user: str) -> bool:
    return conn.execute("select 1 from pg_roles where rolname = %s", (user,)).fetchone() is not None


def _check_scopable(conn: psycopg.Connection, user: str) -> None:
    """A user who bypasses row-level security, or reads every branch through another role, is refused:
    limiting it to some branches would be a promise the database does not keep."""
    row = conn.execute(
        "select rolsuper or rolbypassrls, pg_has_role(oid, %s, 'member') or pg_has_role(oid, %s, 'member')"
        " from pg_roles where rolname = %s",
        (READER, PUBLISHER, user),
    ).fetchone()
    if row is None:
        raise AccessError(f"no database user {user}: create the login first (CREATE ROLE {user} LOGIN ...)")
    bypasses, reads_all = row
    if bypasses:
        raise AccessError(f"{user} is a superuser or bypasses row-level security: it would see every branch")
    if reads_all:
        raise AccessError(f"{user} is a member of {READER} or {PUBLISHER}, which read every branch")


def _known_branches(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "select distinct trim(branch_code) from raw.branches"
        " where _business_date = (select max(_business_date) from raw.branches)"
    )
    return {code for (code,) in rows}
