"""Run the `rabbitform` CLI in a child process as an installed copy runs: its modules' bytecode
cached (pip compiles it at install time), even when the benchmark itself runs under
`PYTHONDONTWRITEBYTECODE`, which would compile every module again at each start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import bus_runtime
import topology

RABBITFORM = str(Path(sys.executable).with_name("rabbitform"))


def installed_environment(bytecode: str) -> dict[str, str]:
    """The environment with bytecode cached under `bytecode` (a temporary directory: never the
    source tree), compiled once here, outside any timing."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    environment["PYTHONPYCACHEPREFIX"] = bytecode
    packages = [str(Path(topology.__file__).parent), str(Path(bus_runtime.__file__).parent)]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], env=environment, check=True, timeout=300)
    return environment
