"""The notebook widgets, where users import them (they live in :mod:`prefect_nbauth.notebook.widgets`).

- :class:`LoginWidget`: log in with an auth string, a Cloud API key or gateway headers;
- :class:`AuthStatusWidget`: what Prefect in this kernel sends, kept up to date;
- :class:`EventStreamWidget`: the newest Prefect events, live, throttled.

Importing this module imports ipywidgets; ``import prefect_nbauth`` alone never does.
"""

from __future__ import annotations

from .notebook.widgets import AuthStatusWidget, EventStreamWidget, LoginWidget

__all__ = ["AuthStatusWidget", "EventStreamWidget", "LoginWidget"]
