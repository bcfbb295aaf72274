"""Adapters published by installed packages, through the otel_execaudit.adapters entry points."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from otel_execaudit.executor.adapters import AdapterRegistry, load_adapters
from otel_execaudit.errors import AdapterError


@pytest.fixture
def installed(tmp_path):
    """A package installed the way pip leaves it: a module and a dist-info with entry points."""
    (tmp_path / "sms_adapters.py").write_text(textwrap.dedent("""
        from otel_execaudit import adapter

        def send_sms(context):
            return {"sent_to": context.params["to"]}

        @adapter("page_oncall")
        def page_oncall(context):
            return {"paged": True}
    """))
    info = tmp_path / "sms_adapters-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sms-adapters\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[otel_execaudit.adapters]\nsend_sms = sms_adapters:send_sms\npaging = sms_adapters\n")
    return tmp_path


def test_entry_points_register_functions_and_modules_of_adapters(installed):
    script = textwrap.dedent("""
        from otel_execaudit.executor.adapters import default_registry
        print(default_registry.get("send_sms").name, default_registry.get("page_oncall").name)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, env={"PYTHONPATH": str(installed)},
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["sms_adapters.send_sms", "sms_adapters.page_oncall"]


def test_a_registry_without_entry_points_sees_only_its_own(installed, monkeypatch):
    monkeypatch.syspath_prepend(str(installed))
    assert AdapterRegistry().get("send_sms") is None
    assert AdapterRegistry(entry_points=True).get("send_sms").name == "sms_adapters.send_sms"


def test_a_second_adapter_for_one_action_type_is_refused():
    registry = AdapterRegistry()
    registry.adapter("deploy")(lambda context: None)
    with pytest.raises(AdapterError, match="already has adapter"):
        registry.adapter("deploy")(lambda context: None)


def test_an_adapters_file_cannot_shadow_an_imported_module(tmp_path):
    (tmp_path / "json.py").write_text("raise AssertionError('must not be imported')\n")
    with pytest.raises(AdapterError, match="already imported"):
        load_adapters(str(tmp_path / "json.py"))
