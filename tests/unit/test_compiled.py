"""The parser compiled by mypyc (`server.compiled`, built by scripts/build_compiled.py): in use
here, reading every message as the pure-Python parser does, and never served stale."""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.corpus import generate
from server import compiled
from server.mail_ingest import mime

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "tests" / "data" / "mail"


def test_this_process_runs_the_compiled_parser() -> None:
    """The suite tests what users run: scripts/setup.sh builds the parser; a fresh build loads."""
    assert compiled.status == "compiled (mypyc)", compiled.status
    assert mime.__file__ is not None
    assert mime.__file__.endswith(importlib.machinery.EXTENSION_SUFFIXES[0])


def prepared_texts(paths: list[str]) -> list[str]:
    """Every message under `paths`, prepared at capture level full, as comparable text."""
    from server.mail_ingest.prepare import PrepareOptions, prepare_raw
    from server.mail_ingest.sources.files import FileWalk, RawMessage

    options = PrepareOptions(
        "full", frozenset({"northwind-supplies.com"}), frozenset({"anna@northwind-supplies.com"})
    )
    texts = []
    for message in FileWalk([Path(p) for p in paths]).messages(by_path=True):
        assert isinstance(message, RawMessage)
        prepared = prepare_raw(message, options)
        if prepared.item is not None:  # header order follows a set's, which varies by process
            prepared.item.headers = dict(sorted(prepared.item.headers.items()))
        texts.append(repr(prepared))
    return texts


def test_the_compiled_and_the_pure_parser_prepare_the_same(tmp_path: Path) -> None:
    """The nasty samples and 300 messages of the benchmark's mailbox, prepared by this process
    (compiled) and by one told to run the sources (RAPPORT_COMPILED=0): item for item equal."""
    generate(tmp_path / "corpus", messages=300, seed=7)
    paths = [str(SAMPLES), str(tmp_path / "corpus")]
    code = (
        "import json, sys\n"
        "from server import compiled\n"
        "from tests.unit.test_compiled import prepared_texts\n"
        "print(json.dumps([compiled.status, prepared_texts(sys.argv[1:])]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *paths],
        env={**os.environ, "RAPPORT_COMPILED": "0"},
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    status, pure = json.loads(done.stdout)
    assert status == "pure Python (RAPPORT_COMPILED=0)"
    ours = prepared_texts(paths)
    assert len(ours) == len(pure) > 300
    assert [i for i, (a, b) in enumerate(zip(ours, pure, strict=True)) if a != b] == []


def _import_mime_in(root: Path) -> tuple[str, str, str]:
    """(status, where server.mail_ingest.mime came from, stderr) for a Python run from `root`."""
    code = (
        "from server import compiled\n"
        "import server.mail_ingest.mime as mime\n"
        "print(compiled.status)\n"
        "print(mime.__file__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(root)},
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    status, file = done.stdout.splitlines()
    return status, file, done.stderr


def test_a_source_edited_after_the_build_runs_as_source(tmp_path: Path) -> None:
    """A checkout and its build, copied: served compiled, until one source changes; then every
    module runs from source (the compiled ones call each other's code directly), with a warning."""
    shutil.copytree(
        REPO / "server", tmp_path / "server", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(compiled.BUILD_DIR, tmp_path / "build" / "compiled")

    status, file, _ = _import_mime_in(tmp_path)
    assert (status, Path(file).parent) == (
        "compiled (mypyc)",
        tmp_path / "build" / "compiled" / "server" / "mail_ingest",
    )

    text = tmp_path / "server" / "mail_ingest" / "mime_text.py"
    text.write_text(text.read_text() + "\n# edited\n")
    status, file, stderr = _import_mime_in(tmp_path)
    reason = "server/mail_ingest/mime_text.py changed since the build"
    assert status == f"pure Python: compiled build {reason}"
    assert file == str(tmp_path / "server" / "mail_ingest" / "mime.py")
    assert f"running the pure-Python parser: {reason}; rebuild with scripts/setup.sh" in stderr


def _fake_build(root: Path, build: Path, *, tag: str | None = None) -> None:
    source = root / "server" / "x.py"
    source.parent.mkdir(parents=True)
    source.write_text("X = 1\n")
    build.mkdir()
    (build / "x.so").write_bytes(b"")
    (build / "shared.so").write_bytes(b"")
    manifest = {
        "tag": tag or compiled.build_tag(),
        "modules": {
            "server.x": {
                "file": "x.so",
                "source_sha256": hashlib.sha256(b"X = 1\n").hexdigest(),
            }
        },
        "shared": {"module": "abc__mypyc", "file": "shared.so"},
    }
    (build / compiled.MANIFEST).write_text(json.dumps(manifest))


def test_a_fresh_build_names_every_module_and_the_library_they_share(tmp_path: Path) -> None:
    _fake_build(tmp_path, tmp_path / "b")
    assert compiled.read_build(tmp_path / "b", tmp_path) == {
        "server.x": tmp_path / "b" / "x.so",
        "abc__mypyc": tmp_path / "b" / "shared.so",
    }


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda root, build: shutil.rmtree(build), compiled.NOT_BUILT),
        (
            lambda root, build: (build / compiled.MANIFEST).write_text("{"),
            "unreadable manifest: Expecting property name enclosed in double quotes",
        ),
        (
            lambda root, build: (root / "server" / "x.py").write_text("X = 2\n"),
            "server/x.py changed since the build",
        ),
        (
            lambda root, build: (root / "server" / "x.py").unlink(),
            "server/x.py changed since the build",
        ),
        (lambda root, build: (build / "x.so").unlink(), "missing from the build: "),
    ],
    ids=["none", "unreadable", "edited", "deleted", "incomplete"],
)
def test_a_build_that_cannot_be_trusted_says_why(
    tmp_path: Path, spoil: object, reason: str
) -> None:
    _fake_build(tmp_path, tmp_path / "b")
    spoil(tmp_path, tmp_path / "b")  # type: ignore[operator]
    found = compiled.read_build(tmp_path / "b", tmp_path)
    assert isinstance(found, str) and found.startswith(reason), found


def test_a_build_for_another_interpreter_is_not_loaded(tmp_path: Path) -> None:
    _fake_build(tmp_path, tmp_path / "b", tag="cpython-399 .cpython-399-x86_64-linux-gnu.so")
    assert compiled.read_build(tmp_path / "b", tmp_path) == (
        f"built for cpython-399 .cpython-399-x86_64-linux-gnu.so, this is {compiled.build_tag()}"
    )
