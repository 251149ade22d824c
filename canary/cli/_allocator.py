"""Process settings made before the command line's imports: polars' allocator keeps the
memory it frees during a ``canary scan``, and the imports run without the cycle collector.

A scan parses a file of millions of rows in chunks of similar size; by default jemalloc
hands each chunk's pages back to the system and faults them in again for the next one
(half the scan's page faults). Keeping them costs about 150 MiB of resident memory in a
process that ends with the scan. jemalloc reads its settings when polars loads, so this
module is imported by ``canary.cli`` before anything that imports polars, and acts only
for the scan command.

The imports (click, SQLAlchemy, polars, rich, phonenumbers: some 10^5 objects, none of
them garbage) ran the cycle collector 88 times. ``imports_done`` freezes what they made,
so later collections (a scan's rendering, the server's requests) skip it, and turns the
collector back on.
"""

from __future__ import annotations

import gc
import os
import sys


def _subcommand(argv: list[str]) -> str | None:
    args = argv[1:]
    while args and args[0].startswith("--db"):
        args = args[2:] if args[0] == "--db" else args[1:]
    return args[0] if args else None


if _subcommand(sys.argv) == "scan":
    os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:-1,muzzy_decay_ms:-1")


gc.disable()


def imports_done() -> None:
    """Called by ``canary.cli`` once its imports are done."""
    gc.freeze()
    gc.enable()
