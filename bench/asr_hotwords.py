"""Does glossary biasing (hotwords) hurt captions of speech unrelated to the glossary?

Runs the gateway's speech front end (VAD + Whisper, final captions) over a recording twice,
without hotwords and with the hotwords of a glossary, and prints the word error rate of each.
Default: the real reading two_cities_16k.wav against the ACL glossary (unrelated).

    python bench/asr_hotwords.py --models tiny.en base
    python bench/asr_hotwords.py --glossary ../shared/data/glossaries/tico19_covid_terms_en_de_zh_ja.tsv
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from glossary.model import GlossaryEntry, GlossarySnapshot  # noqa: E402
from server.asr.front_end import (  # noqa: E402
    FrontEndParams,
    SliceIn,
    SpeechFrontEnd,
    default_vad_factory,
)
from server.asr.hotwords import hotwords_for  # noqa: E402
from server.asr.models import AsrModelParams, load_model  # noqa: E402
from server.asr.recognizer import WhisperRecognizer  # noqa: E402
from server.asr.wer import wer  # noqa: E402
from server.client import read_wav  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def glossary(path: Path) -> GlossarySnapshot:
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    terms = dict.fromkeys(row.get("en") or next(iter(row.values())) for row in rows)
    entries = tuple(GlossaryEntry(t, {"de": (t,)}) for t in terms if t)
    return GlossarySnapshot("g", 1, "bench", path.stem, "en", entries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, default=DATA / "speech" / "two_cities_16k.wav")
    parser.add_argument(
        "--glossary", type=Path, default=DATA / "glossaries" / "rasst_acl_tagged_en_terms.tsv"
    )
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    args = parser.parse_args()
    reference = args.audio.with_suffix(".txt").read_text()
    _, pcm = read_wav(args.audio)
    hotwords = hotwords_for([glossary(args.glossary)])
    print(f"hotwords: {hotwords}\n")
    print("| model | no hotwords | with hotwords |\n| --- | --- | --- |")
    for model in args.models:
        recognizer = WhisperRecognizer(load_model(AsrModelParams(model=model)))
        scores = []
        for words in ("", hotwords):
            front = SpeechFrontEnd(FrontEndParams(), default_vad_factory(), recognizer)
            front.set_hotwords(words)
            results = front.process([SliceIn(0, 0, pcm, True)], partial=False)
            text = " ".join(c.text for r in results for c in r.captions if c.final)
            scores.append(wer(reference, text))
        print(f"| {model} | {scores[0]:.3f} | {scores[1]:.3f} |")


if __name__ == "__main__":
    main()
