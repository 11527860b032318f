"""Corpus BLEU and chrF with sacreBLEU, on hypotheses already re-segmented to the references."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# The default 13a tokenizer scores raw Chinese/Japanese as BLEU 0: always pick by language.
_TOKENIZERS = {"zh": "zh", "ja": "ja-mecab"}
CHAR_LEVEL_LANGS = frozenset({"zh", "ja"})


def bleu_tokenizer(lang: str) -> str:
    return _TOKENIZERS.get(lang.split("-")[0], "13a")


def is_char_level(lang: str) -> bool:
    """Latency and alignment units: characters for zh/ja, whitespace words otherwise."""
    return lang.split("-")[0] in CHAR_LEVEL_LANGS


@dataclass(frozen=True)
class QualityScores:
    bleu: float
    chrf: float
    tokenizer: str
    signature: str


def corpus_quality(
    hypotheses: Sequence[str], references: Sequence[str], lang: str
) -> QualityScores:
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    tokenizer = bleu_tokenizer(lang)
    bleu = BLEU(tokenize=tokenizer)
    chrf = CHRF()
    bleu_score = bleu.corpus_score(list(hypotheses), [list(references)])
    chrf_score = chrf.corpus_score(list(hypotheses), [list(references)])
    return QualityScores(
        bleu=float(bleu_score.score),
        chrf=float(chrf_score.score),
        tokenizer=tokenizer,
        signature=str(bleu.get_signature()),
    )
