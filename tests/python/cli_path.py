"""Where the C++ `metaprobe` tool of the metaprobe under test lives (shared by the CLI tests)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import metaprobe


def metaprobe_cli() -> Optional[Path]:
    """The C++ tool: bundled in the installed package (metaprobe/bin) or beside _core in a CMake build."""
    so = Path(metaprobe._core.__file__).resolve()
    for cand in (so.parent / "bin" / "metaprobe", so.parent.parent / "cpp" / "tools" / "metaprobe"):
        if cand.exists():
            return cand
    return None
