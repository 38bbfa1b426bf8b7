"""atheris harness for server/mail_ingest/mime.py: every input parses at each capture level or
raises `BadItem` with a known reason; never another exception, never a hang.

    python -m bench.fuzz_mime --runs 1000000
"""

from __future__ import annotations

import sys

from bench.fuzz_run import run

try:
    import atheris  # type: ignore[import-not-found]

    with atheris.instrument_imports(include=["server.mail_ingest"]):
        from tests.reliability.test_fuzz_parsers import parse_every_level
except ImportError:
    from tests.reliability.test_fuzz_parsers import parse_every_level

if __name__ == "__main__":
    sys.exit(
        run(
            "mime",
            parse_every_level,
            "tests/reliability/test_fuzz_parsers.py::test_hostile_mail_parses_or_is_a_bad_item",
            sys.argv[1:],
        )
    )
