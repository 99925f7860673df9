"""The Jinja set-up of odwh's HTML pages (the gate summary, the board pack and dashboard): one for all."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from odwh import i18n


def template_environment(package: str) -> Environment:
    """The templates of ``<package>/templates``, autoescaped; an undefined name fails the render, never blank.

    ``{{ _("Top exposures") }}`` (jinja2.ext.i18n, new style: ``%(name)s`` placeholders, ``%%`` for a percent
    sign) writes the catalogue's Khmer, then the English: Khmer first, as staff read.
    """
    env = Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda message: bilingual(*(i18n.gettext(loc, message) for loc in i18n.LOCALES)),
        ngettext=lambda singular, plural, n: bilingual(
            *(i18n.translations(loc).ungettext(singular, plural, n) for loc in i18n.LOCALES)
        ),
        newstyle=True,
    )
    return env


def bilingual(khmer: str, english: str) -> Markup:
    """The Khmer in a ``lang="km"`` span (its font and line breaking), then the English."""
    return Markup('<span class="khmer" lang="km">{}</span> / {}').format(escape(khmer), escape(english))
