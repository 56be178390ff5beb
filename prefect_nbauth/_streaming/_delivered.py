"""What a stream hands out, besides the items themselves: their delivery marks, state, stats.

Each product delivers Prefect's own model (``ReceivedEvent``, ``Log``) with
two fields more, left out of ``model_dump()``/JSON so those stay Prefect's:
``delivery`` (``"live"`` or ``"reconciled"``) and ``late``.
"""

from __future__ import annotations

import enum
import importlib
from dataclasses import asdict
from typing import Any, ClassVar

from .._redaction import scrub_fields

__all__ = ["DeliveredModel", "StateName", "StatsSnapshot", "delivered_model"]


class StateName(str, enum.Enum):
    """Base of a stream's state enum: a ``str`` (for widgets) that prints as its value."""

    def __str__(self) -> str:
        return str(self.value)


class StatsSnapshot:
    """``delivered`` and ``to_dict()`` for a frozen stats dataclass (``_times``: its datetimes)."""

    _times: ClassVar[tuple[str, ...]] = ()
    live: int
    reconciled: int

    def __post_init__(self) -> None:
        scrub_fields(self)  # last_error and any other text pass the egress when a snapshot is taken

    @property
    def delivered(self) -> int:
        return self.live + self.reconciled

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)  # type: ignore[call-overload]  # every subclass is a dataclass
        data["delivered"] = self.delivered
        for key in self._times:
            if data[key] is not None:
                data[key] = data[key].isoformat()
        result: dict[str, Any] = data
        return result


def delivered_model(base: Any, name: str, doc: str, *, default: str, module: str) -> Any:
    """``base`` (a Prefect pydantic model) plus ``delivery`` and ``late``, excluded from dumps."""
    from typing import Literal

    from pydantic import Field

    namespace = {
        "__module__": module,
        "__qualname__": name,
        "__doc__": doc,
        "__annotations__": {"delivery": Literal["live", "reconciled"], "late": bool},
        "delivery": Field(default=default, exclude=True, repr=False),
        "late": Field(default=False, exclude=True, repr=False),
    }
    return type(name, (base,), namespace)


class DeliveredModel:
    """``delivered_model`` of the Prefect class at ``base`` ("module.Class"), built on first call.

    Prefect imports slowly, so nothing of it is imported before a stream starts.
    """

    def __init__(self, base: str, name: str, doc: str, *, default: str, module: str) -> None:
        self._base, self._name, self._doc = base, name, doc
        self._default, self._module = default, module
        self._built: Any = None

    def __call__(self) -> Any:
        if self._built is None:
            where, _, attribute = self._base.rpartition(".")
            base = getattr(importlib.import_module(where), attribute)
            self._built = delivered_model(base, self._name, self._doc, default=self._default,
                                          module=self._module)
        return self._built
