"""Guard against PySide6 6.12 dropping references to None/True on Python 3.11.

Shiboken 6.12 returns None from void methods (and True from some calls) without taking a
reference. On Python 3.12+ these singletons are immortal, so nothing happens; on 3.11 every
such call steals one reference, and after about ten thousand calls (a few hundred canvas
repaints) the interpreter frees None and aborts with "none_dealloc: deallocating None".
Giving the three singletons an enormous reference head start (what 3.12 does by design)
puts that crash out of reach of any session. Importing `segstudio.ui` applies it.
"""

from __future__ import annotations

import ctypes
import sys

# 2**40 stolen references would take decades of painting at thousands of calls a second.
HEADROOM = 1 << 40

_applied = False


def _refcount_cell(obj: object) -> ctypes.c_ssize_t | None:
    """The object's ob_refcnt field, or None if the layout is not the plain CPython one."""
    cell = ctypes.c_ssize_t.from_address(id(obj))
    # sys.getrefcount counts its own argument; a match proves we found the field.
    if abs(cell.value - (sys.getrefcount(obj) - 1)) > 2:
        return None
    return cell


def protect_singletons() -> bool:
    """Make None, True and False practically immortal; True if applied (or not needed)."""
    global _applied
    if _applied or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return True
    cells = [_refcount_cell(obj) for obj in (None, True, False)]
    if any(cell is None for cell in cells):
        return False
    for cell in cells:
        cell.value += HEADROOM  # type: ignore[union-attr]
    _applied = True
    return True
