"""The Apache Velocity 1.7 oracle: renders mapping templates as API Gateway's engine does.

``VelocityOracle.java`` is compiled with ``javac`` once per test session into a temporary
directory; one JVM then renders a whole corpus of cases fed as JSON lines on its stdin.
The jars come from the Debian packages ``velocity``, ``libcommons-lang-java`` and
``libjackson2-databind-java`` (``.ci/run`` installs them where ``apt-get`` exists).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).with_name("VelocityOracle.java")
JAR_DIR = Path("/usr/share/java")
# Velocity 1.7 needs commons-collections 3 (ExtendedProperties) and commons-lang 2 at run time;
# commons-lang 2.6 is also the escapeJavaScript API Gateway documents.
JARS = (
    "velocity-1.7.jar",
    "commons-collections3.jar",
    "commons-lang-2.6.jar",
    "jackson-databind.jar",
    "jackson-core.jar",
    "jackson-annotations.jar",
)
# Compiling once and starting the JVM once cost a few seconds; a whole corpus renders in one run.
TIMEOUT_SECONDS = 120


class OracleUnavailable(Exception):
    """Java or a jar is missing; the message says which."""


@dataclass(frozen=True)
class Case:
    """One render: a template's text, the ``$input`` body, ``$context`` and ``$stageVariables``."""

    template: str
    body: str
    context: Mapping[str, Any]
    stage_variables: Mapping[str, str]


@dataclass(frozen=True)
class Result:
    """Velocity's output, or the error it raised (``output`` is then None)."""

    output: str | None
    error: str | None = None


def missing_prerequisites(jar_dir: Path = JAR_DIR) -> str | None:
    """Why the oracle cannot run here (None when it can)."""
    missing = [tool for tool in ("java", "javac") if shutil.which(tool) is None]
    missing += [str(jar_dir / jar) for jar in JARS if not (jar_dir / jar).is_file()]
    if missing:
        return ("the Velocity 1.7 oracle needs " + ", ".join(missing)
                + " (apt-get install default-jdk-headless velocity libcommons-lang-java"
                " libjackson2-databind-java)")
    return None


class VelocityOracle:
    """The compiled harness in *workdir*; :meth:`render_all` runs one JVM per corpus."""

    def __init__(self, workdir: Path) -> None:
        reason = missing_prerequisites()
        if reason is not None:
            raise OracleUnavailable(reason)
        self._classpath = ":".join(str(JAR_DIR / jar) for jar in JARS)
        self._classes = workdir
        compiled = subprocess.run(
            ["javac", "-nowarn", "-encoding", "UTF-8", "-cp", self._classpath,
             "-d", str(workdir), str(SOURCE)],
            capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False)
        if compiled.returncode != 0:
            raise RuntimeError(f"javac failed:\n{compiled.stderr}")

    def render_all(self, cases: Sequence[Case]) -> list[Result]:
        """Every case rendered by Velocity 1.7, in order, by one JVM."""
        # ensure_ascii: lone surrogates travel as \\ud800 escapes, which Jackson reads back.
        lines = "".join(
            json.dumps({"template": case.template, "body": case.body,
                        "context": case.context,
                        "stageVariables": case.stage_variables}) + "\n"
            for case in cases)
        ran = subprocess.run(
            ["java", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp",
             f"{self._classes}:{self._classpath}", "VelocityOracle"],
            input=lines.encode("ascii"), capture_output=True, timeout=TIMEOUT_SECONDS,
            check=False)
        if ran.returncode != 0:
            raise RuntimeError(f"the oracle JVM failed:\n{ran.stderr.decode(errors='replace')}")
        answers = [json.loads(line) for line in ran.stdout.decode("ascii").splitlines()]
        if len(answers) != len(cases):
            raise RuntimeError(f"{len(cases)} cases sent, {len(answers)} answers")
        return [Result(a["output"]) if a["ok"] else Result(None, a["error"]) for a in answers]
