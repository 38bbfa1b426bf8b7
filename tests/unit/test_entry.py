"""The `rapport` command's entry point (`server.entry`): light to import again in each process
multiprocessing starts, and quick to exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.modules import fresh_interpreter


def test_the_console_script_run_again_by_a_worker_imports_no_command_line() -> None:
    """multiprocessing runs the parent's main script again in each process it starts, as
    `__mp_main__`: the installed `rapport` script must then import nothing heavy."""
    script = Path(sys.executable).with_name("rapport")
    code = (
        "import runpy, sys\n"
        f"runpy.run_path({str(script)!r}, run_name='__mp_main__')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'click'}))\n"
        "print(sorted(m for m in sys.modules if m.startswith('server.')))"
    )
    assert fresh_interpreter(code)[:2] == ["[]", "['server.compiled', 'server.entry']"]


def test_the_console_script_runs_the_command_line() -> None:
    script = Path(sys.executable).with_name("rapport")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert "Usage: rapport" in done.stdout and "import" in done.stdout


def test_the_command_freezes_what_is_left_when_it_ends() -> None:
    """So the interpreter's last collections at exit skip the whole heap."""
    code = (
        "import gc, sys\n"
        "sys.argv = ['rapport', '--version']\n"
        "from server.entry import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    print(exit.code, gc.get_freeze_count())\n"
    )
    status, frozen = fresh_interpreter(code)[-1].split()
    assert status == "0" and int(frozen) > 10_000
