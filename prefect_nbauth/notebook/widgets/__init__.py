"""The widgets' implementation (plain ipywidgets 8 and one anywidget), one module each.

Users import them from :mod:`prefect_nbauth.widgets`, the one public path; this
package exports nothing of its own so that there is no second way in.
"""
