"""ChoiceBar: the row of choices above the login form's panels (an anywidget).

Why not ``ipywidgets.Tab``: its tab bar is a Lumino ``TabBar``, which installs its
pointer and keyboard listeners only when it receives Lumino's ``before-attach``
message. After a page reload (or reopening the notebook) on a slow page, JupyterLab
can put a restored view into the page without that message: the tabs are drawn but
dead (no listener on the bar; clicks change neither ``aria-selected`` nor the
kernel's ``selected_index``), while widgets whose listeners are bound when their
view renders (buttons, text boxes, this bar) keep working. Issue 25 item 2;
``tests/browser/test_browser_login_form.py`` reproduces it with Chromium's CPU
throttling. This bar binds its listeners in ``render`` (``choice_bar.js``), so it
works whenever it is drawn; the panels are an ``ipywidgets.Stack`` (no listeners of
its own), switched in the page through ``jslink`` so a busy kernel does not delay it.

It follows the WAI-ARIA tabs pattern: ``role=tablist`` of ``role=tab`` buttons,
``aria-selected``, arrow keys / Home / End move and select. Its colours come from
JupyterLab's theme variables (``choice_bar.css``), measured at 4.5:1 or more in light,
dark and Notebook 7 (``tests/browser/test_browser_themes.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
from traitlets import Int, List, TraitError, Unicode, validate

__all__ = ["ChoiceBar"]

_HERE = Path(__file__).resolve().parent


class ChoiceBar(anywidget.AnyWidget):
    """Labels to choose from; ``index`` is the chosen one (synced both ways)."""

    _esm = (_HERE / "choice_bar.js").read_text(encoding="utf-8")
    _css = (_HERE / "choice_bar.css").read_text(encoding="utf-8")

    labels = List(Unicode(), help="The choices, in order.").tag(sync=True)
    index = Int(0, help="The chosen label's position.").tag(sync=True)
    description = Unicode("", help="What is being chosen (the tablist's accessible name).").tag(sync=True)

    @validate("index")
    def _valid_index(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if not 0 <= value < max(1, len(self.labels)):
            raise TraitError(f"index {value} is not one of the {len(self.labels)} choices")
        return value
