"""A small Dockerfile reader: instructions with continuation lines joined, comments dropped."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON array of CMD/ENTRYPOINT/HEALTHCHECK-style arguments."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            text = text[text.index("CMD") + 3 :]
        return list(json.loads(text.strip()))


def read_instructions(path: Path) -> list[Instruction]:
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, args = pending.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    return instructions


def pip_install_specs(commands: list[str]) -> list[str]:
    """The requirement arguments of every `pip install` in shell command lines.

    Flags (and the values of flags that take one) are dropped; ``-e X`` counts as ``X``;
    quotes are removed, so ``'.[x]'`` and ``.[x]`` compare equal.
    """
    takes_value = {
        "-r",
        "--requirement",
        "-c",
        "--constraint",
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "-t",
        "--target",
        "--prefix",
    }
    specs: list[str] = []
    for command in commands:
        for words in _simple_commands(command):
            for i in range(len(words) - 1):
                if Path(words[i]).name in {"pip", "pip3"} and words[i + 1] == "install":
                    args = words[i + 2 :]
                    break
            else:
                continue
            skip = False
            for word in args:
                if skip:
                    skip = False
                elif word in takes_value:
                    skip = True
                elif word in {"-e", "--editable"}:
                    continue
                elif not word.startswith("-"):
                    specs.append(word)
    return specs


def _simple_commands(command: str) -> list[list[str]]:
    """Split a shell line into its simple commands (at ;, &&, ||, |), quotes respected."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token and set(token) <= set(";&|"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [words for words in commands if words]
