"""Field validators shared by every typed record (configs, boards, data sets).

Each failure is one :class:`A2QFlowError` naming the field, the value given and what is allowed.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from a2qflow.errors import A2QFlowError


def enum_value(enum_cls: type[Enum], value: Any, field_name: str) -> Any:
    """``enum_cls(value)``, or an error listing the allowed values."""
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum_cls)
        raise A2QFlowError(f"{field_name}={value!r} is not valid",
                           f"use one of {allowed}") from None


def int_in_range(value: Any, field_name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise A2QFlowError(f"{field_name}={value!r} is not valid",
                           f"use an integer from {lo} to {hi}")
    return value


def positive_number(value: Any, field_name: str, hi: float | None = None,
                    hi_reason: str = "") -> float:
    """A positive int or float (YAML gives either), at most ``hi`` when given."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise A2QFlowError(f"{field_name}={value!r} is not valid", "use a positive number")
    if hi is not None and value > hi:
        raise A2QFlowError(f"{field_name}={value:g} is above the maximum {hi:g}{hi_reason}",
                           f"use a number up to {hi:g}")
    return float(value)
