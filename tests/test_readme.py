"""What the README and the docs show runs, as shown."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
DOCS = README.parent / "docs"
# ledger-format.md's one block, the sample verifier, is run by test_verify against each case.
PAGES = [README, *sorted(page for page in DOCS.glob("*.md") if page.name != "ledger-format.md")]
BLOCKS = [(page.name, block) for page in PAGES
          for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.S)]

# What each block prints, in order of the pages and within them (their comments say the same).
EXPECTED = [
    ("README.md", ["completed", "['Revoked key k-17']"]),
    ("README.md", ["SUCCESS would restart api",
                   "BLOCKED ['ValidationRequired', 'Acknowledgement']", "SUCCESS LIVE"]),
    ("inspection.md", ["backup-2026-12-04 completed acme", "True ledger"]),
    ("inspection.md", ["NameError True", "fibonacci",
                       "Last error: tool 'fibonacci' (step 0)"]),
    ("inspection.md", ["False (1,)", "rollback is not possible: step 1 (revoke_old) has an "
                       "irreversible side effect", "('step 0 (issue): vault revoke k-18',)"]),
    ("inspection.md", ["Rollback guidance for backup-2026-12-04: possible (by hand)",
                       "True nothing was executed: perform the steps by hand"]),
    ("recording.md", ["[{'order_id': 7, 'symbol': 'ACME', 'quantity': 3}]"]),
    ("recording.md", ["stopped: security state is compromised before step 1", "incomplete"]),
]


def test_every_python_block_is_checked():
    assert [page for page, _ in BLOCKS] == [page for page, _ in EXPECTED]


@pytest.mark.parametrize("index", range(len(EXPECTED)))
def test_every_block_runs_as_shown(index, tmp_path):
    result = subprocess.run([sys.executable, "-c", BLOCKS[index][1]], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    for expected in EXPECTED[index][1]:
        assert expected in result.stdout
    assert "sk-never-recorded" not in (tmp_path / ".execaudit" / "readme.db").read_bytes().decode(
        "latin-1")
    verified = subprocess.run([sys.executable, "-m", "otel_execaudit.cli", "verify",
                               str(tmp_path / ".execaudit" / "readme.db")],
                              capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr


ROOT = README.parent


CLI = DOCS / "cli.md"


def readme_commands(page: Path = CLI) -> list[list[str]]:
    console = re.findall(r"```console\n(.*?)```", page.read_text(), re.S)
    lines = [line for block in console for line in block.splitlines()
             if line.startswith((".venv/bin/execaudit plan", ".venv/bin/execaudit execute"))]
    return [line.split()[1:] for line in lines]


def test_the_readme_command_line_example_runs_as_shown(tmp_path):
    """The three executor commands, the exit statuses the table gives, and the sample report
    (docs/cli.md; the README's command is its first)."""
    commands = readme_commands()
    assert [words[0] for words in commands] == ["plan", "execute", "execute"]
    assert readme_commands(README) == commands[:1]

    def run(words: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "otel_execaudit.cli", *words,
                               "--ledger", str(tmp_path / "l.db"), "--exporter", "none"],
                              cwd=ROOT, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    planned = run(commands[0])
    assert planned.returncode == 0, planned.stderr
    sample = re.search(r"```\n(=+\nEXECUTION REPORT.*?)```", CLI.read_text(), re.S).group(1)
    for line in sample.splitlines():
        if line.strip() and "…" not in line:
            assert line in planned.stdout.splitlines(), line
    plan_hash = re.search(r"--plan-hash (sha256:[0-9a-f]{64})", planned.stdout).group(1)

    blocked = run(commands[1])
    assert blocked.returncode == 1 and "STATUS: ✗ BLOCKED" in blocked.stdout
    pinned = run([word.replace("sha256:…", plan_hash) for word in commands[2]])
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert "[LIVE] buy: place a limit buy order" in pinned.stdout
