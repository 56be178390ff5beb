"""The widgets (plain ipywidgets 8: they run wherever widgets run); users import them from prefect_nbauth.widgets.

- :class:`LoginWidget`: log in with an auth string, a Cloud API key or gateway headers;
- :class:`AuthStatusWidget`: what Prefect in this kernel sends, kept up to date;
- :class:`EventStreamWidget`: the newest Prefect events, live, throttled.

Importing this module imports ipywidgets; ``import prefect_nbauth`` alone never does.
"""

from __future__ import annotations

from .events import EventStreamWidget
from .login import LoginWidget
from .status import AuthStatusWidget

__all__ = ["AuthStatusWidget", "EventStreamWidget", "LoginWidget"]
