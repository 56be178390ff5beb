"""What every prefect_nbauth widget shares: a readable text form, small HTML helpers."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["TextForm", "esc"]


def esc(value: Any) -> str:
    """HTML-escape anything shown in a widget: event names and server messages are not ours."""
    return html.escape("" if value is None else str(value), quote=True)


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
