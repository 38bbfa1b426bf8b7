"""Compile the mail parser's modules (`server.compiled.MODULES`) with mypyc into build/compiled/.

Run by scripts/setup.sh; ~30 s. Writes the build beside, then swaps it in whole, with a
manifest of the hash of every source it was made from: `server.compiled` loads the build only
while those sources are unchanged. Needs a C compiler and Python's headers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from server.compiled import (
    BUILD_DIR,
    MANIFEST,
    MODULES,
    SOURCE_ROOT,
    build_tag,
    source_hash,
    source_of,
)


def main() -> int:
    hashes = {module: source_hash(source_of(module)) for module in MODULES}
    with tempfile.TemporaryDirectory(prefix="rapport-mypyc-") as work:
        # Outside the checkout: mypyc's setuptools run would read pyproject.toml as its own. It
        # ends by copying each module next to where its package would be, so make those.
        for module in MODULES:
            Path(work, *module.split(".")[:-1]).mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "mypyc", *(str(source_of(m)) for m in MODULES)],
            cwd=work,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
            print("build_compiled: mypyc failed (see above)", file=sys.stderr)
            return 1
        built = next(Path(work, "build").glob("lib.*"))
        staging = BUILD_DIR.with_name(BUILD_DIR.name + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        modules = {}
        for module in MODULES:
            (file,) = built.joinpath(*module.split(".")[:-1]).glob(module.rsplit(".", 1)[1] + ".*")
            relative = file.relative_to(built)
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, staging / relative)
            modules[module] = {"file": str(relative), "source_sha256": hashes[module]}
        (shared,) = built.glob("*__mypyc.*")
        shutil.copy2(shared, staging / shared.name)
        manifest = {
            "tag": build_tag(),
            "modules": modules,
            "shared": {"module": shared.name.split(".")[0], "file": shared.name},
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(BUILD_DIR, ignore_errors=True)
    staging.rename(BUILD_DIR)
    print(f"build_compiled: {len(MODULES)} modules in {BUILD_DIR.relative_to(SOURCE_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
