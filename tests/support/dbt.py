"""The one way tests build dbt models."""

from __future__ import annotations

from pathlib import Path

from odwh import transform

# Cautious indirect selection: a data test reaching a model outside the selection (a relationships test) is
# left out; the raw-key tests need complete deliveries, which scripted raw rows are not.
DATA_TEST_OPTIONS = ("--indirect-selection", "cautious", "--exclude", "tag:raw_keys")


def build(url: str, select: str, work_dir: Path, *extra_args: str, data_tests: bool = False) -> None:
    """``dbt build --select <select>``: the seeds and models, and with ``data_tests`` their data tests.

    Unit tests never run here (each module runs the ones of its models on their own, or the dbt suite does).
    ``work_dir`` holds dbt's target and logs: share one per module so later invocations parse partially.
    """
    resource_types = ["seed", "model", *(["test"] if data_tests else [])]
    options = [arg for kind in resource_types for arg in ("--resource-type", kind)]
    if data_tests:
        options += DATA_TEST_OPTIONS
    transform.run_dbt(["build", "--select", select, *options, *extra_args], url, work_dir=work_dir)
