"""Resolving Apache Cassandra's jars from Maven Central, and finding a Java that runs them.

Cassandra ships on Maven Central as ``org.apache.cassandra:cassandra-all`` with every
runtime dependency, so a node needs no tarball: Maven copies the runtime closure into
a cache directory outside the repository, which every later start reuses.  The cache
is complete only once a marker file is written, so an interrupted download is redone.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from zdm.errors import SandboxError

#: the one Cassandra release the sandbox runs
CASSANDRA_VERSION = "5.0.8"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_MARKER = ".complete"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>zdm.sandbox</groupId>
  <artifactId>cassandra-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""


def cache_root() -> Path:
    if "ZDM_CACHE_DIR" in os.environ:
        return Path(os.environ["ZDM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "zdm"


def lib_dir(version: str = CASSANDRA_VERSION) -> Path:
    return cache_root() / f"cassandra-{version}" / "lib"


def jars_cached(version: str = CASSANDRA_VERSION) -> bool:
    return (lib_dir(version) / _MARKER).exists()


def ensure_jars(version: str = CASSANDRA_VERSION, *, quiet: bool = True) -> Path:
    """Return the directory holding Cassandra's runtime jars, downloading them if needed."""
    lib = lib_dir(version)
    if (lib / _MARKER).exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SandboxError("Maven (`mvn`) is not installed; it is needed to fetch Cassandra's jars",
                           hint="install it (Debian: `apt-get install maven`) and retry")
    staging = lib.parent / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="zdm-pom-") as tmp:
        (Path(tmp) / "pom.xml").write_text(_POM.format(version=version))
        cmd = [mvn, "-B", *(["-q"] if quiet else []), f"{DEPENDENCY_PLUGIN}:copy-dependencies",
               f"-DoutputDirectory={staging}", "-DincludeScope=runtime"]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SandboxError(f"Maven could not resolve cassandra-all {version}:\n{tail}",
                           hint="check that Maven Central is reachable (proxy settings in ~/.m2/settings.xml)")
    if not list(staging.glob(f"cassandra-all-{version}.jar")):
        raise SandboxError(f"Maven finished but cassandra-all-{version}.jar is missing from {staging}")
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    (lib / _MARKER).write_text(version + "\n")
    return lib


def jamm_jar(lib: Path) -> Path:
    found = sorted(lib.glob("jamm-*.jar"))
    if not found:
        raise SandboxError(f"no jamm jar in {lib}; the jar cache looks incomplete",
                           hint=f"delete {lib.parent} and run `zdm sandbox up` again")
    return found[-1]


_CANDIDATE_JAVAS = (
    "/usr/lib/jvm/java-17-openjdk-amd64/bin/java",
    "/usr/lib/jvm/java-17-openjdk-arm64/bin/java",
    "/usr/lib/jvm/java-11-openjdk-amd64/bin/java",
    "/usr/lib/jvm/java-11-openjdk-arm64/bin/java",
)
_SUPPORTED_JAVA = (11, 17)


def java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def find_java() -> str:
    """A Java 11 or 17 executable: $ZDM_JAVA, $JAVA_HOME, the usual Debian paths, then PATH.

    Cassandra 5.0 runs on Java 11 and 17 only (24+ installs a SecurityManager it rejects).
    """
    candidates: list[str] = []
    if os.environ.get("ZDM_JAVA"):
        candidates.append(os.environ["ZDM_JAVA"])
    if os.environ.get("JAVA_HOME"):
        candidates.append(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    candidates.extend(_CANDIDATE_JAVAS)
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    seen = []
    for java in candidates:
        if not Path(java).exists():
            continue
        major = java_major(java)
        seen.append(f"{java} ({major or 'unknown version'})")
        if major in _SUPPORTED_JAVA:
            return java
    tried = "; ".join(seen) or "none found"
    raise SandboxError(f"no Java 11 or 17 to run Cassandra 5.0 (tried: {tried})",
                       hint="install OpenJDK 17 (Debian: `apt-get install openjdk-17-jre-headless`) "
                            "or point ZDM_JAVA at its java binary")
