"""The proxy's log lines: text or JSON, each line about a client naming its connection and peer."""

import json
import logging

import pytest

from zdm import logs


class Captured:
    def __init__(self, capsys):
        self.capsys = capsys

    def getvalue(self) -> str:
        return self.capsys.readouterr().err


@pytest.fixture()
def captured(capsys):
    yield Captured(capsys)
    logging.getLogger().handlers.clear()  # the next test's logging is pytest's again


def test_json_lines_carry_the_client_and_the_worker(captured):
    logs.configure("info", "json", worker="w1")
    log = logging.getLogger("zdm.proxy")
    log.info("closing the client connection: %s", "lost", extra=logs.client("w1-7", "10.0.0.9:5555"))
    log.debug("not at info")
    (line,) = captured.getvalue().splitlines()
    record = json.loads(line)
    assert {k: record[k] for k in ("level", "logger", "message", "worker", "conn", "peer")} == {
        "level": "info", "logger": "zdm.proxy", "message": "closing the client connection: lost",
        "worker": "w1", "conn": "w1-7", "peer": "10.0.0.9:5555"}


def test_text_lines_name_the_client_at_the_end(captured):
    logs.configure("debug", "text")
    logging.getLogger("zdm.proxy").warning("garbage", extra=logs.client("c-2", "127.0.0.1:40000"))
    logging.getLogger("zdm.proxy").warning("about nobody")
    first, second = captured.getvalue().splitlines()
    assert first.endswith("WARNING zdm.proxy: garbage [conn c-2 peer 127.0.0.1:40000]")
    assert second.endswith("WARNING zdm.proxy: about nobody")
