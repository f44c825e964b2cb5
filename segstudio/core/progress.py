"""What a long core job (import, export) reports while it runs, so one worker wrapper in the
app can show any of them: `progress(done, total, item)`.

`done` counts the items handled so far, `total` is how many there will be (0 while unknown,
as when an import is still discovering files), `item` names the one just handled.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[int, int, str], None]
UNKNOWN_TOTAL = 0
