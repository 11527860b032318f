"""Benchmark: recall of glossary drafts against the RASST paper glossaries, per document format.

For each of the five ACL 60/60 dev talks, the talk's English text is laid out
as a paper (abstract, sections: tests/support/acl_papers.py) and written as
plain text, Markdown, HTML, a PDF (fpdf2) and PPTX slides (python-pptx). Each
file goes through the gateway's reader and the statistical keyphrase
extractor (:mod:`glossary.extract`, no LLM), and the ranked terms are scored
against the glossary the RASST authors extracted from the talk's paper
(``shared/data/glossaries/rasst_acl_paper_extracted.tsv``), restricted to
the terms that occur in the talk's text (the others cannot be found in it).

recall@N: the share of those gold terms matched (case, plural and hyphens
ignored; "out-of-vocabulary (OOV)" matched by either form) by one of the first
N terms, micro-averaged over the talks. The baseline ranks the most frequent
non-stopword words and word pairs of the same text.

    .venv/bin/python bench/glossary_extract.py
    .venv/bin/python bench/glossary_extract.py --formats text,pdf --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from glossary.extract import ExtractionLimits, KeyphraseParams, extract_keyphrases  # noqa: E402
from glossary.extract.documents import read_document  # noqa: E402
from tests.support.acl_papers import (  # noqa: E402
    Paper,
    frequency_baseline,
    gold_terms,
    paper,
    paper_glossary,
    recall_at,
    talk_ids,
)

CUTOFFS = (20, 50, 100)
FORMATS = {
    "text": ("paper.txt", lambda p: p.text().encode()),
    "markdown": ("paper.md", lambda p: p.markdown().encode()),
    "html": ("paper.html", lambda p: p.html().encode()),
    "pdf": ("paper.pdf", Paper.pdf),
    "pptx": ("slides.pptx", Paper.pptx),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]

    talks = talk_ids()
    gold = {talk: gold_terms(talk) for talk in talks}
    total_gold = sum(len(g) for g in gold.values())
    print(
        f"{len(talks)} talks; paper-glossary terms {sum(len(paper_glossary(t)) for t in talks)}, "
        f"of which in the talk text (gold) {total_gold}"
    )
    results: dict[str, dict[str, float]] = {}
    header = " | ".join(f"recall@{n}" for n in CUTOFFS)
    print(f"| extractor | {header} | ms per file (read + rank) |")
    print("| --- | " + " | ".join("---" for _ in CUTOFFS) + " | --- |")

    hits = dict.fromkeys(CUTOFFS, 0.0)
    for talk in talks:
        found = frequency_baseline(paper(talk).text(), max(CUTOFFS))
        for n in CUTOFFS:
            hits[n] += recall_at(found, gold[talk], n) * len(gold[talk])
    results["baseline"] = {f"recall@{n}": hits[n] / total_gold for n in CUTOFFS}
    _row("frequency baseline (text)", results["baseline"], None)

    for fmt in formats:
        filename, build = FORMATS[fmt]
        hits = dict.fromkeys(CUTOFFS, 0.0)
        elapsed = 0.0
        for talk in talks:
            data = build(paper(talk))
            start = time.perf_counter()
            document = read_document(data, filename, ExtractionLimits())
            terms = extract_keyphrases([document], KeyphraseParams(max_terms=max(CUTOFFS)))
            elapsed += time.perf_counter() - start
            found = [k.term for k in terms]
            for n in CUTOFFS:
                hits[n] += recall_at(found, gold[talk], n) * len(gold[talk])
        results[fmt] = {f"recall@{n}": hits[n] / total_gold for n in CUTOFFS}
        results[fmt]["ms_per_file"] = 1000 * elapsed / len(talks)
        _row(f"glossary.extract ({fmt})", results[fmt], results[fmt]["ms_per_file"])

    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


def _row(name: str, numbers: dict[str, float], ms: float | None) -> None:
    cells = " | ".join(f"{numbers[f'recall@{n}']:.2f}" for n in CUTOFFS)
    print(f"| {name} | {cells} | {'-' if ms is None else f'{ms:.0f}'} |")


if __name__ == "__main__":
    main()
