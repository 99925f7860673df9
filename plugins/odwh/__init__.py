"""odwh: overdraft-risk data platform (Airflow pipeline + PostgreSQL analytics warehouse)."""

__version__ = "0.1.0"


def module_command(module: str, *args: str) -> tuple[list[str], dict[str, str]]:
    """(argv, env) of ``python -m <module> <args>`` as a child process of odwh's, with odwh importable however
    this process found it (an installed package, Airflow's plugins folder, ``PYTHONPATH``)."""
    import os
    import sys
    from pathlib import Path

    package_root = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    return [sys.executable, "-m", module, *args], {**os.environ, "PYTHONPATH": path}
