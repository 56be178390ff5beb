"""What every prefect_nbauth widget shares: a readable text form, small HTML helpers, theme CSS."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any

import ipywidgets as widgets
import traitlets

from ..._redaction import scrub_text

__all__ = ["THEME_CSS", "SafeHTML", "TextForm", "clock_time", "cut", "cut_middle", "esc", "theme_style"]


class SafeHTML(widgets.HTML):
    """The only HTML widget of this package: its value passes the egress as it is set.

    Whatever a widget shows (a server's message, an event's payload, a provider's
    complaint) and so whatever a saved notebook keeps of its state, holds no secret
    this process has seen, whole or in part (:func:`prefect_nbauth._redaction.scrub_text`).
    ``tests/unit/test_layout.py`` checks that no other HTML widget is made here.
    """

    @traitlets.validate("value")
    def _egress(self, proposal: Any) -> str:
        value = proposal["value"]
        return scrub_text(value) if isinstance(value, str) else value


def esc(value: Any) -> str:
    """HTML-escape anything shown in a widget: event names and server messages are not ours."""
    return html.escape("" if value is None else str(value), quote=True)


def cut(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters long, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cut_middle(text: str, limit: int) -> str:
    """``text`` at most about ``limit`` characters long, its start and its end kept: a traceback's
    first frames and its exception (the line a person needs) both stay."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… {len(text) - 2 * half:,} characters not shown …\n{text[-half:]}"


def clock_time(value: Any) -> tuple[datetime | None, str]:
    """A datetime (in UTC when aware) and its ``HH:MM:SS.mmm``; ``(None, "")`` for anything else."""
    if not isinstance(value, datetime):
        return None, ""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value, value.strftime("%H:%M:%S.%f")[:-3]


# Colours come from JupyterLab's theme variables only, so the widgets follow the
# theme (light, dark, Notebook 7). No single --jp-*-color reaches 4.5:1 (WCAG AA)
# against both backgrounds: light themes get the darkest shade (…-color0), dark
# themes (JupyterLab sets body[data-jp-theme-light="false"]) the lightest that
# still reads as the colour (…-color2). Orange text never reaches 4.5:1 on white,
# so warnings are ordinary text marked by an orange bar and a word, not by the
# colour of their letters. The state dot is a graphic (aria-hidden), not text.
THEME_CSS = """
.pnb-w { color: var(--jp-content-font-color1); font-family: var(--jp-ui-font-family);
  font-size: var(--jp-ui-font-size1); line-height: 1.45; max-width: 100%; box-sizing: border-box; }
.pnb-w * { box-sizing: border-box; }
.pnb-w .pnb-muted { color: var(--jp-content-font-color2); }
.pnb-w .pnb-error { color: var(--jp-error-color0); }
.pnb-w .pnb-ok { color: var(--jp-success-color0); }
.pnb-w .pnb-info { color: var(--jp-content-font-color1); }
body[data-jp-theme-light="false"] .pnb-w .pnb-error { color: var(--jp-error-color2); }
body[data-jp-theme-light="false"] .pnb-w .pnb-ok { color: var(--jp-success-color2); }
.pnb-w .pnb-note { border-left: 3px solid var(--jp-border-color1); padding: 2px 0 2px 8px; margin: 4px 0; }
.pnb-w .pnb-note.pnb-warn { border-left-color: var(--jp-warn-color1); }
.pnb-w .pnb-note.pnb-error { border-left-color: var(--jp-error-color1); }
.pnb-w .pnb-note.pnb-ok { border-left-color: var(--jp-success-color1); }
.pnb-w .pnb-dot { display: inline-block; width: 0.7em; height: 0.7em; border-radius: 50%;
  margin-right: 0.35em; vertical-align: baseline; background: var(--jp-border-color1); }
.pnb-w .pnb-dot.pnb-ok { background: var(--jp-success-color1); }
.pnb-w .pnb-dot.pnb-warn { background: var(--jp-warn-color1); }
.pnb-w .pnb-dot.pnb-error { background: var(--jp-error-color1); }
.pnb-w .pnb-dot.pnb-info { background: var(--jp-brand-color1); }
.pnb-w .pnb-badge { display: inline-block; padding: 0 6px; border-radius: 3px; font-weight: 600;
  border: 1px solid var(--jp-border-color1); background: var(--jp-layout-color2);
  color: var(--jp-content-font-color0); }
.pnb-w code, .pnb-w .pnb-mono { font-family: var(--jp-code-font-family); font-size: var(--jp-code-font-size); }
.pnb-w details > summary { cursor: pointer; }
.pnb-w a { color: var(--jp-content-link-color); }
"""


def theme_style(extra_css: str = "") -> SafeHTML:
    """A hidden child holding :data:`THEME_CSS` (and a widget's own layout CSS) once per
    widget, so the frequent updates of its views do not carry it."""
    style = SafeHTML(value=f"<style>{THEME_CSS}{extra_css}</style>", layout=widgets.Layout(display="none"))
    style.add_class("pnb-style")
    return style


class TextForm:
    """Mixin: front ends without widget support show ``text_form()``, not ``VBox(children=…)``.

    ipywidgets puts ``repr(widget)`` (cut at 110 characters) into ``text/plain``;
    that is what a terminal, ``nbconvert --to markdown`` or a front end without the
    widget manager shows, and what a saved notebook keeps beside the widget view.
    """

    def text_form(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        try:
            return self.text_form()
        except Exception:  # noqa: BLE001 - repr must never raise
            return f"<{type(self).__name__}>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data = super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]
        data["text/plain"] = repr(self)
        return data
