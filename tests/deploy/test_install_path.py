"""The gateway image installs the package the way the README's Quick start does.

README: `make run` -> the Makefile's `install` target -> `pip install -e .`. The image runs
`pip install .` (an editable install makes no sense in an image); the package spec and its
extras must be the same, so the image never ships a different dependency set than the one
the README installs and the tests run against.
"""

from __future__ import annotations

import re

from tests.deploy.dockerfile import pip_install_specs, read_instructions
from tests.deploy.support import DEPLOY, REPO


def _makefile_target(name: str) -> list[str]:
    lines = (REPO / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^{name}\s*:", line))
    recipe: list[str] = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def _normalise(spec: str) -> tuple[str, frozenset[str]]:
    """`.[b, a]` -> (".", {"a", "b"}); `./` and `.` are the same path."""
    match = re.fullmatch(r"(?P<path>[^\[]+)(?:\[(?P<extras>[^\]]*)\])?", spec)
    assert match, spec
    path = match["path"].rstrip("/") or "."
    extras = frozenset(e.strip() for e in (match["extras"] or "").split(",") if e.strip())
    return path, extras


def _dockerfile_specs(name: str) -> list[str]:
    path = REPO / name if name == "Dockerfile" else DEPLOY / name
    runs = [i.args for i in read_instructions(path) if i.keyword == "RUN"]
    return pip_install_specs(runs)


def test_readme_quick_start_runs_the_makefile_install_target() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make run" in readme
    assert any(
        line.startswith("run:") and "install" in line
        for line in (REPO / "Makefile").read_text(encoding="utf-8").splitlines()
    )


def test_gateway_image_installs_what_make_install_installs() -> None:
    make_specs = [s for s in pip_install_specs(_makefile_target("install")) if s != "pip"]
    image_specs = _dockerfile_specs("Dockerfile")
    assert make_specs, "no pip install of the package in the Makefile's install target"
    assert image_specs, "no pip install in the Dockerfile"
    assert {_normalise(s) for s in image_specs} == {_normalise(s) for s in make_specs}


def test_retriever_image_installs_the_same_package_with_the_neural_extra() -> None:
    make_path, make_extras = _normalise(
        next(s for s in pip_install_specs(_makefile_target("install")) if s != "pip")
    )
    packages = [
        _normalise(s) for s in _dockerfile_specs("retriever.Dockerfile") if s.startswith(".")
    ]
    assert packages == [(make_path, make_extras | {"neural"})]


def test_pip_install_specs_reads_flags_quotes_and_editables() -> None:
    assert pip_install_specs(["$(BIN)/pip install --quiet -e ."]) == ["."]
    assert pip_install_specs(["pip install --no-cache-dir '.[postgres]' && pip check"]) == [
        ".[postgres]"
    ]
    assert pip_install_specs(['/opt/x/bin/pip install -i https://x "torch==2.10.0"']) == [
        "torch==2.10.0"
    ]
    assert pip_install_specs(["$(BIN)/pip install --quiet --upgrade pip"]) == ["pip"]
