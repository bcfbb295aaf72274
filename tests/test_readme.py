"""What the README shows runs, as shown."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)

# What each block prints, in order (the README's comments say the same).
EXPECTED = [
    ["completed", "['Revoked key k-17']"],
    ["[{'order_id': 7, 'symbol': 'ACME', 'quantity': 3}]"],
    ["stopped: security state is compromised before step 1", "incomplete"],
]


def test_every_python_block_is_checked():
    assert len(BLOCKS) == len(EXPECTED)


@pytest.mark.parametrize("index", range(len(EXPECTED)))
def test_readme_block_runs_as_shown(index, tmp_path):
    result = subprocess.run([sys.executable, "-c", BLOCKS[index]], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    for expected in EXPECTED[index]:
        assert expected in result.stdout
    assert "sk-never-recorded" not in (tmp_path / ".execaudit" / "readme.db").read_bytes().decode(
        "latin-1")
    verified = subprocess.run([sys.executable, "-m", "otel_execaudit.cli", "verify",
                               str(tmp_path / ".execaudit" / "readme.db")],
                              capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr
