"""The Jinja set-up of odwh's HTML pages (the gate summary, the board pack and dashboard): one for all."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


def template_environment(package: str) -> Environment:
    """The templates of ``<package>/templates``, autoescaped; an undefined name fails the render, never blank."""
    return Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
