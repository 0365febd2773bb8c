"""Package-wide invariants of zdm.cql."""

import ast
import pathlib

import zdm.cql


def test_cql_package_stays_sans_io():
    for path in pathlib.Path(zdm.cql.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        modules = {alias.name.split(".")[0] for node in ast.walk(tree)
                   if isinstance(node, ast.Import) for alias in node.names}
        modules |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom)}
        assert not modules & {"asyncio", "socket", "cassandra"}, path.name
