"""The mail parser's modules as compiled by mypyc (`scripts/build_compiled.py`), loaded only while
they are what their sources say.

The parse workers spend three fifths of an import's CPU in these modules, all pure Python; built
by mypyc, the workers' code uses 7-9% less CPU, a whole import ~9% less (docs/benchmarks.md). A
compiled module would shadow its `.py` file and run stale after an edit, so the build sits apart, in
`build/compiled/`, with the hash of every source it was made from, and this finder serves it
only when every one of those sources is unchanged: all or nothing, because compiled modules call
each other's compiled code directly. Otherwise, or with `RAPPORT_COMPILED=0`, Python imports
the sources as usual.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

# The hot path of a parse worker. Modules whose classes cross between processes (pickled) stay
# out: a compiled frozen dataclass does not come back from pickle.
MODULES = (
    "server.mail_ingest.mime",
    "server.mail_ingest.mime_tree",
    "server.mail_ingest.mime_charset",
    "server.mail_ingest.mime_fields",
    "server.mail_ingest.mime_text",
    "server.crm.blob_parts",
    "server.crm.blob_rows",
    "server.crm.bulk",
    "server.crm.addresses",
    "server.crm.direction",
)
SOURCE_ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = SOURCE_ROOT / "build" / "compiled"
MANIFEST = "manifest.json"
NOT_BUILT = "not built (scripts/setup.sh builds it)"


def source_of(module: str, root: Path = SOURCE_ROOT) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_tag() -> str:
    """What a build must match to load here: the interpreter and its extension suffix."""
    return f"{sys.implementation.cache_tag} {importlib.machinery.EXTENSION_SUFFIXES[0]}"


def read_build(build_dir: Path = BUILD_DIR, root: Path = SOURCE_ROOT) -> dict[str, Path] | str:
    """Where each module of the build in `build_dir` lies (and the library they share), if every
    source it was made from is unchanged; else why not."""
    try:
        manifest = json.loads((build_dir / MANIFEST).read_text())
    except FileNotFoundError:
        return NOT_BUILT
    except (OSError, ValueError) as exc:
        return f"unreadable manifest: {exc}"
    if manifest.get("tag") != build_tag():
        return f"built for {manifest.get('tag')}, this is {build_tag()}"
    files: dict[str, Path] = {}
    for module, entry in manifest["modules"].items():
        try:
            changed = source_hash(source_of(module, root)) != entry["source_sha256"]
        except OSError:
            changed = True
        if changed:
            return f"{source_of(module, root).relative_to(root)} changed since the build"
        files[module] = build_dir / entry["file"]
    shared = manifest.get("shared")
    if shared:
        files[shared["module"]] = build_dir / shared["file"]
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        return f"missing from the build: {', '.join(missing)}"
    return files


class CompiledFinder:
    """A meta path finder for the modules of one build, ahead of the usual ones."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        file = self.files.get(fullname)
        if file is None:
            return None
        return importlib.util.spec_from_file_location(fullname, file)


status = "pure Python"


def install() -> None:
    """Serve the compiled parser to this process if a fresh build exists (idempotent)."""
    global status
    if any(isinstance(finder, CompiledFinder) for finder in sys.meta_path):
        return
    if os.environ.get("RAPPORT_COMPILED", "1") == "0":
        status = "pure Python (RAPPORT_COMPILED=0)"
        return
    build = read_build()
    if isinstance(build, str):
        status = f"pure Python: compiled build {build}"
        if build != NOT_BUILT:  # a build that was made and cannot be used: say so
            import logging  # only now: every process imports this module first

            logging.getLogger(__name__).warning(
                "running the pure-Python parser: %s; rebuild with scripts/setup.sh", build
            )
        return
    sys.meta_path.insert(0, CompiledFinder(build))
    status = "compiled (mypyc)"
