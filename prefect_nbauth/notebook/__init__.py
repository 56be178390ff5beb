"""The notebook layer: IPython magics and ipywidgets on top of the core.

Nothing here is imported by ``import prefect_nbauth``: ``%load_ext prefect_nbauth``
imports :mod:`.magics` (hence IPython), and :mod:`prefect_nbauth.widgets` the
widgets (hence ipywidgets). Everything here asks the core; nothing reaches into
Prefect itself.
"""
