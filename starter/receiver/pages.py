"""The small HTML pages a link shows: a confirmation with one button, or what happened.

Every text is escaped; the page loads nothing, runs no script, and tells the browser
not to keep it, frame it, or send its address (a capability) on as a referrer.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from aiohttp import web

HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
}

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em}}
button{{font-size:1.1em;padding:.5em 1.5em}}</style></head>
<body><h1>{title}</h1>
{paragraphs}
{form}
</body></html>
"""


@dataclass(frozen=True)
class Page:
    """One page: its HTTP status, title, lines of text and, for a confirmation, its button."""

    status: int
    title: str
    lines: tuple[str, ...] = ()
    button: str | None = None

    def response(self) -> web.Response:
        """Return the page as an HTML response (a form posting to the same address if a button)."""
        paragraphs = "\n".join(f"<p>{escape(line)}</p>" for line in self.lines)
        form = (
            f'<form method="post"><button type="submit">{escape(self.button)}</button></form>'
            if self.button
            else ""
        )
        text = _TEMPLATE.format(title=escape(self.title), paragraphs=paragraphs, form=form)
        return web.Response(
            status=self.status, text=text, content_type="text/html", charset="utf-8", headers=HEADERS
        )
