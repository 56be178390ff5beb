"""The notebook widgets: import them from here (the one public path; they live in
:mod:`prefect_nbauth.notebook.widgets`, one module each).

- :class:`LoginWidget`: log in with an auth string, a Cloud API key or gateway headers;
- :class:`AuthStatusWidget`: what Prefect in this kernel sends, kept up to date;
- :class:`EventStreamWidget`: the newest Prefect events, live, throttled;
- :class:`LogStreamWidget`: live logs, level colours, follow/pause, text filter;
- :class:`FlowRunWidget`: one flow run live, from its first state to its last (the data
  behind it is :func:`prefect_nbauth.watch`'s :class:`~prefect_nbauth.RunWatch`).

Importing this module imports ipywidgets; ``import prefect_nbauth`` alone never does.
"""

from __future__ import annotations

from .notebook.widgets.events import EventStreamWidget
from .notebook.widgets.login import LoginWidget
from .notebook.widgets.logs import LogStreamWidget
from .notebook.widgets.run import FlowRunWidget
from .notebook.widgets.status import AuthStatusWidget

__all__ = ["AuthStatusWidget", "EventStreamWidget", "FlowRunWidget", "LogStreamWidget", "LoginWidget"]
