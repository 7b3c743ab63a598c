"""Outside text made safe to store and show: no control characters, no markup.

Text that comes from outside (a provider's error message, an article title a writer typed) ends
up in a terminal, a log line, a database row, or an operator's dashboard. ``plain`` removes what
a terminal would act on (ESC sequences, backspaces, bells, NUL) and what no database stores
(lone surrogates); ``inert`` also takes the markup characters out, for places that some other
software renders as HTML (rq-dashboard's job pages).
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI on some terminals),
# and lone surrogates.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# ESC [ ... final byte, ESC ] ... BEL/ST: removed whole, so no "[31m" is left behind.
_ESCAPE_SEQUENCES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]")
_MARKUP = str.maketrans({"<": "‹", ">": "›"})


def plain(text: str, limit: int | None = None) -> str:
    """``text`` without escape sequences or control characters (tab and newline are kept),
    cut to ``limit`` characters when given."""
    cleaned = _CONTROLS.sub("", _ESCAPE_SEQUENCES.sub("", text))
    if limit is not None and len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return cleaned


def inert(text: str, limit: int | None = None) -> str:
    """``plain(text)`` with ``<`` and ``>`` shown as ‹ and ›: no tag can form, whatever renders it."""
    return plain(text, limit).translate(_MARKUP)
