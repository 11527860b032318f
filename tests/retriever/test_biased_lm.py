"""The glossary-biased caption LM: a valid base, refused corruption, and better term words."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from glossary.model import GlossaryEntry, GlossarySnapshot
from retriever.biased_lm import build_biased_lm, check_arpa, default_lm_path, ensure_base_lm
from server.client import read_wav
from server.speech import FrontEndParams, build_front_end


@pytest.fixture(scope="module")
def base_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_base_lm(tmp_path_factory.mktemp("lm"))


def test_base_lm_matches_the_default_model(base_lm: Path) -> None:
    from pocketsphinx import NGramModel

    check_arpa(base_lm)
    model = NGramModel.readfile(str(default_lm_path()))
    checked = 0
    with base_lm.open() as f:
        in_unigrams = False
        for line in f:
            if line.startswith("\\1-grams"):
                in_unigrams = True
                continue
            if in_unigrams and line.startswith("\\"):
                break
            parts = line.split("\t")
            if (
                in_unigrams
                and len(parts) == 3
                and parts[1] in {"language", "model", "speech", "borrowing"}
            ):
                # Common words are likelier than rare ones, and every value is a real log10.
                assert -7.0 < float(parts[0]) < -1.0 and np.isfinite(float(parts[2]))
                assert np.isfinite(model.prob([parts[1]]))
                checked += 1
    assert checked == 4


def test_corrupt_base_lm_dump_is_refused_and_rebuilt(base_lm: Path, tmp_path: Path) -> None:
    # What the broken pocketsphinx writer sometimes produces: -inf probabilities, NaN back-offs.
    corrupt = tmp_path / base_lm.name
    corrupt.write_text(
        "\\data\\\nngram 1=2\nngram 2=0\n\n\\1-grams:\n-99.0000\t'bout\tnan\n-99.0000\tthe\tnan\n\n\\end\\\n"
    )
    with pytest.raises(RuntimeError, match="impossible"):
        check_arpa(corrupt)
    rebuilt = ensure_base_lm(tmp_path)  # finds the bad cached file and replaces it
    check_arpa(rebuilt)
    assert rebuilt.stat().st_size > 1_000_000


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is installed by make test")
def test_biased_lm_recognises_glossary_terms_the_default_lm_misses(
    base_lm: Path, tmp_path: Path
) -> None:
    text = "so what is lexical borrowing and why does it matter for an annotated corpus"
    wav = tmp_path / "term.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(wav)], check=True)
    _, pcm = read_wav(wav)
    pcm = np.concatenate([np.zeros(8000, np.int16), pcm, np.zeros(16000, np.int16)])
    snapshot = GlossarySnapshot(
        id="g",
        version=1,
        tenant="t",
        name="acl",
        source_language="en",
        entries=(
            GlossaryEntry("lexical borrowing", {"de": ("lexikalische Entlehnung",)}),
            GlossaryEntry("annotated corpus", {"de": ("annotiertes Korpus",)}),
        ),
    )
    spec = build_biased_lm(base_lm, [snapshot], tmp_path / "biased")

    def captions(biased: bool) -> str:
        front_end = build_front_end(FrontEndParams())
        if biased:
            front_end.set_language_model(spec)
        result = front_end.process(0, 0, pcm, final=True)
        return " ".join(c.text for c in result.captions if c.final)

    plain, biased = captions(False), captions(True)
    assert "lexical borrowing" in biased and "annotated corpus" in biased, biased
    assert "lexical borrowing" not in plain, plain
    # The rest is still English from the sentence, not noise (the base is a bigram model,
    # so some trigram context is lost: see docs/benchmarks.md).
    assert {"so", "what", "is", "and"} <= set(biased.split()), biased
