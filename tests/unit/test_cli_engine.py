"""Choosing the engine of `zdm migrate` and `zdm validate`: each bad choice is refused, with what
to do, before any cluster or Spark is touched."""

from __future__ import annotations

import socket
import subprocess
import sys
import zipfile

import pytest
from typer.testing import CliRunner

from zdm.cli.main import app

runner = CliRunner()


@pytest.fixture()
def cfg(tmp_path):
    """A zdm.yaml whose clusters nothing listens on: a refused engine never gets to them."""
    path = tmp_path / "zdm.yaml"
    path.write_text(f"origin: {{port: {free_port()}}}\ntarget: {{port: {free_port()}}}\n"
                    f"state_dir: {tmp_path / 'state'}\n")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# (extra arguments, exit code, what the message and hint must say)
REFUSED = [
    (["--engine", "flink"], 2, ["unknown engine 'flink'", "local, spark", "--engine spark"]),
    (["--master", "local[2]"], 2, ["--master", "only for --engine spark", "add --engine spark"]),
    (["--engine", "spark"], 2, ["needs a Spark master", "--master local[4]", "spark-submit"]),
    (["--engine", "spark", "--master", "locl[2]"], 2, ["not a Spark master URL", "spark://HOST:PORT"]),
    (["--engine", "spark", "--master", "sc://spark:15002"], 2, ["Spark Connect", "classic master"]),
    (["--engine", "spark", "--master", "local[2]", "--workers", "3"], 2,
     ["--workers is for the local engine", "one range at a time", "local[N]"]),
    (["--engine", "spark", "--master", "local[2]", "--concurrency", "8"], 2,
     ["--concurrency is for the local engine"]),
]


@pytest.mark.parametrize("command", ["migrate", "validate"])
@pytest.mark.parametrize("args, code, says", REFUSED,
                         ids=["unknown-engine", "master-without-spark", "spark-without-master",
                              "bad-master-url", "spark-connect", "workers-on-spark",
                              "concurrency-on-spark"])
def test_a_bad_engine_choice_is_refused_with_what_to_do(cfg, command, args, code, says):
    result = runner.invoke(app, [command, "-c", str(cfg), "--no-progress", *args])
    assert result.exit_code == code, result.output
    text = " ".join(result.output.split())
    for part in says:
        assert part in text, (part, text)


@pytest.mark.parametrize("command", ["migrate", "validate"])
def test_a_master_that_does_not_answer_is_named(cfg, command):
    """Spark itself would retry registering for a minute and then give up silently."""
    master = f"spark://127.0.0.1:{free_port()}"
    result = runner.invoke(app, [command, "-c", str(cfg), "--no-progress", "--engine", "spark",
                                 "--master", master])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert f"cannot reach the Spark master {master}" in text
    assert "refused" in text.lower() and "local[N]" in text


def test_the_spark_engine_without_pyspark_says_how_to_install_it(cfg, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)  # what `import pyspark` meets when absent
    result = runner.invoke(app, ["migrate", "-c", str(cfg), "--no-progress", "--engine", "spark",
                                 "--master", "local[2]"])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "needs pyspark, which is not installed" in text
    assert "pip install 'zdm[spark]'" in text


def test_the_zip_shipped_to_executors_holds_a_working_zdm(tmp_path):
    from zdm.ranges.spark import zdm_zip

    path = zdm_zip(tmp_path)
    assert zdm_zip(tmp_path) == path  # named by its contents: the same zdm, the same name
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    assert "zdm/ranges/spark/executor.py" in names and "zdm/cli/main.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # a Python that has zdm only from the zip runs the executors' side of the engine
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import zdm.ranges.spark.executor as s, "
             "zdm.validate.compare, zdm.migrate.copy; print(s.__file__)")
    out = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True,
                         cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, check=True).stdout
    assert out.strip() == str(path / "zdm" / "ranges" / "spark" / "executor.py")
