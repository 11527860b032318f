"""Acronyms defined in the text, with their expansions.

"large language model (LLM)" and "LLM (large language model)" define LLM.
The long form is found with the algorithm of Schwartz and Hearst (2003, "A
simple algorithm for identifying abbreviation definitions in biomedical
text"): the acronym's characters are matched right to left against the words
before the parenthesis, the first character at the start of a word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# "(LLM)", "(LLMs)", "(XLM-R)", "(F1)": 2-10 characters, a letter, an upper-case letter.
_PARENTHESIS = re.compile(r"\(([^()\n]{1,60})\)")
_SHORT_FORM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-./&]{1,9}$")
_WORD = re.compile(r"\S+")
# Where a sentence or clause ends: the long form never reaches back past these.
_CLAUSE_END = re.compile(r"[.!?;:\"“”\[\]{}]|\n\n")


@dataclass(frozen=True, slots=True)
class AcronymDefinition:
    acronym: str
    expansion: str


def is_acronym(token: str) -> bool:
    """BERT, mBERT, BiLSTM, XLM-R, F1, LLMs: a part with two capitals, or a capital and a digit.

    Hyphenated title-case words ("Task-Oriented") are not acronyms.
    """
    for part in re.split(r"[-‐‑/.]", token):
        upper = sum(c.isupper() for c in part)
        if upper >= 2 or (upper == 1 and any(c.isdigit() for c in part)):
            return True
    return False


def find_definitions(text: str) -> list[AcronymDefinition]:
    found: list[AcronymDefinition] = []
    for match in _PARENTHESIS.finditer(text):
        inside = match.group(1).strip()
        before = text[: match.start()]
        clause = before[_last_clause_end(before) :]
        if _SHORT_FORM.match(inside) and is_acronym(inside):
            words = _WORD.findall(clause)
            base = _singular_acronym(inside)
            window = min(len(base) + 5, 2 * len(base))
            candidate = " ".join(words[-window:])
            long_form = _best_long_form(base, candidate)
            if long_form:
                found.append(AcronymDefinition(base, _clean(long_form)))
            continue
        # The reverse order: "LLM (large language model)".
        words = _WORD.findall(clause)
        if words and len(inside.split()) >= 2:
            short = words[-1].strip(",")
            if _SHORT_FORM.match(short) and is_acronym(short):
                base = _singular_acronym(short)
                long_form = _best_long_form(base, inside)
                if long_form and len(long_form.split()) >= 2:
                    found.append(AcronymDefinition(base, _clean(long_form)))
    return found


def _last_clause_end(text: str) -> int:
    end = 0
    for match in _CLAUSE_END.finditer(text, max(0, len(text) - 400)):
        end = match.end()
    return end


def _singular_acronym(token: str) -> str:
    if len(token) > 2 and token.endswith("s") and token[:-1].isupper():
        return token[:-1]
    return token


def _best_long_form(short: str, long: str) -> str | None:
    """Schwartz & Hearst: the shortest tail of ``long`` that covers ``short``'s characters."""
    s = len(short) - 1
    i = len(long) - 1
    while s >= 0:
        char = short[s].lower()
        if not char.isalnum():
            s -= 1
            continue
        while i >= 0 and (long[i].lower() != char or (s == 0 and i > 0 and long[i - 1].isalnum())):
            i -= 1
        if i < 0:
            return None
        i -= 1
        s -= 1
    start = long.rfind(" ", 0, i + 1) + 1
    result = long[start:].strip(" ,")
    words = result.split()
    if (
        len(result) <= len(short)
        or short.lower() in (w.lower() for w in words)
        or len(words) > min(len(short) + 5, 2 * len(short))
    ):
        return None
    return result


def _clean(long_form: str) -> str:
    """Title-case words in lower case ("Large Language Model" → "large language model")."""
    words = []
    for word in long_form.split():
        if word[:1].isupper() and (word[1:].islower() or not word[1:]) and not is_acronym(word):
            word = word.lower()
        words.append(word)
    return " ".join(words)
