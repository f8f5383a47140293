"""The README's examples run as written: a command copied from it works, and the metadata it promises is there."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _first_bash_block_after(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(heading):]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def test_the_first_command_line_example_runs_as_copied(tmp_path):
    command = _first_bash_block_after("## Command line").replace("\\\n", " ")
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "showme_i2g"] and "[" not in command  # no optional flags inside it
    done = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "out" / "pancakes" / "run.json").read_text())
    versions = record["versions"]
    assert versions["showme_i2g"] == record["showme_i2g"]
    assert all(versions[name] for name in ("torch", "diffusers", "transformers", "peft"))
    assert len(list((tmp_path / "out" / "pancakes").glob("step_*.png"))) == 2
