"""The json log line containerd reads (`--log-format json`): the Logger writes it without importing json, and it
must stay byte for byte what json.dumps(..., separators=(",", ":")) wrote before (ASCII escapes included)."""

import json

import pytest

from pyrunc.errors import Logger


@pytest.mark.parametrize("msg", ["container does not exist", 'a "quoted" \\ path\nsecond line', "héllo ✓ \x01\x7f",
                                 "", "</script>&<"])
def test_json_line_is_json_dumps(tmp_path, msg):
    log = tmp_path / "log.json"
    Logger(str(log), "json").error(msg)
    line = log.read_text()
    doc = json.loads(line)
    assert doc["level"] == "error" and doc["msg"] == msg
    want = json.dumps({"level": "error", "msg": msg, "time": doc["time"]}, separators=(",", ":")) + "\n"
    assert line == want
