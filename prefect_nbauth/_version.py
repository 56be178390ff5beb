"""The version of prefect_nbauth (here, so that no module below the root imports the root)."""

__version__ = "0.1.0"
