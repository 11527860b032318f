"""Write an evaluation's ``report.json``, ``summary.md`` and plots; plot a sweep of runs."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluation.runner import TalkRun


def clean(value: Any) -> Any:
    """NaN/inf → None, recursively: report.json stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def _fmt(value: Any, digits: int = 3, scale: float = 1.0) -> str:
    if value is None:
        return "–"
    if isinstance(value, int | float):
        return f"{value * scale:.{digits}f}"
    return str(value)


def summary_markdown(report: dict[str, Any]) -> str:
    config, data, retrieval, cost = (
        report["config"],
        report["data"],
        report["retrieval"],
        report["cost"],
    )
    lines = [
        f"# Evaluation: {Path(data['dataset']).name}, en→{config['lang']}, lm={config['lm']}",
        "",
        f"{len(data['talks'])} talks, {data['segments']} segments, "
        f"{data['audio_seconds']:.0f} s of synthetic speech ({data['voice']}); "
        f"glossary {report['glossary']['entries']} entries "
        f"({report['glossary']['distractor_entries']} distractors); mode `{report['mode']}`.",
        "",
        "## Retrieval",
        "",
        "| recall@K (strict) | recall@K (late ok) | precision | precision (late ok) | gold items | K |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {_fmt(retrieval.get('recall_at_k'))} | {_fmt(retrieval.get('recall_at_k_late_ok'))} "
        f"| {_fmt(retrieval.get('precision'))} | {_fmt(retrieval.get('precision_late_ok'))} "
        f"| {retrieval.get('gold_items', 0)} | {retrieval.get('k', config['k'])} |",
        "",
        "## Cost",
        "",
        "| retrieval ms p50 / p95 | overhead ratio | processing ms p50 / p95 | max lag s | speed × real time |",
        "| --- | --- | --- | --- | --- |",
        f"| {_fmt(cost['retrieval_ms']['p50'], 1)} / {_fmt(cost['retrieval_ms']['p95'], 1)} "
        f"| {_fmt(cost['overhead_ratio'], 4)} "
        f"| {_fmt(cost['processing_ms']['p50'], 1)} / {_fmt(cost['processing_ms']['p95'], 1)} "
        f"| {_fmt(cost['lag_seconds']['max'], 2)} | {_fmt(cost['speed'], 2)} |",
    ]
    translation = report.get("translation")
    if translation:
        tier = (report.get("config") or {}).get("llm_mode") or "speech"
        lines += [
            "",
            f"## Translation ({tier} tier; re-segmentation: {translation['resegmentation']})",
            "",
            "| BLEU | chrF | TERM_ACC | TERM_ACC forms | StreamLAAL ms | StreamLAAL CA ms |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| {_fmt(translation['bleu'], 2)} | {_fmt(translation['chrf'], 2)} "
            f"| {_fmt(translation['term_acc'])} | {_fmt(translation['term_acc_form_aware'])} "
            f"| {_fmt(translation['stream_laal'], 0)} | {_fmt(translation['stream_laal_ca'], 0)} |",
            "",
            f"`{translation['bleu_signature']}`",
        ]
        if translation.get("terms_missed"):
            lines += [
                "",
                f"Terms said but not rendered (text tier check): {translation['terms_missed']}",
            ]
        if translation.get("resegmentation_note"):
            lines += ["", f"Note: {translation['resegmentation_note']}"]
    missed = retrieval.get("top_missed") or {}
    if missed:
        lines += ["", "Most missed terms: " + ", ".join(f"{t} ({n})" for t, n in missed.items())]
    tools = report["tools"]
    lines += [
        "",
        "Tools: "
        + ", ".join(f"{k} {v}" for k, v in tools.items() if v and k != "mweralign_command"),
        "",
    ]
    return "\n".join(lines)


def write_report(
    report: dict[str, Any], runs: Sequence[TalkRun], out: Path, *, plots: bool = True
) -> None:
    report = clean(report)
    (out / "report.json").write_text(
        json.dumps(report, indent=1, ensure_ascii=False, allow_nan=False), encoding="utf-8"
    )
    (out / "summary.md").write_text(summary_markdown(report), encoding="utf-8")
    if plots:
        plot_cost(runs, out / "cost.png")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    return plt


def plot_cost(runs: Sequence[TalkRun], path: Path) -> None:
    """Retrieval and gateway time per chunk along the audio, one line per talk."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    for run in runs:
        terms = run.of_type("terms")
        done = run.of_type("chunk.done")
        top.plot(
            [e["end"] for e in terms],
            [e["retrieval_ms"] for e in terms],
            ".",
            ms=3,
            label=run.talk_id,
        )
        bottom.plot([e["end"] for e in done], [e["processing_ms"] for e in done], ".", ms=3)
    top.set_ylabel("retrieval ms")
    bottom.set_ylabel("processing ms")
    bottom.set_xlabel("audio time (s)")
    if runs:
        top.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sweep(reports: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """Quality vs latency over lm and recall vs glossary size, from several report.json."""
    plt = _pyplot()
    written: list[Path] = []
    sizes = sorted({r["glossary"]["entries"] for r in reports})

    fig, ax = plt.subplots(figsize=(6, 4))
    for size in sizes:
        rows = sorted(
            (r for r in reports if r["glossary"]["entries"] == size),
            key=lambda r: r["config"]["lm"],
        )
        translated = [r for r in rows if r.get("bleu") is not None and r.get("stream_laal")]
        if translated:
            xs = [r["stream_laal"] / 1000 for r in translated]
            ys = [r["bleu"] for r in translated]
            ax.set_xlabel("StreamLAAL (s)")
            ax.set_ylabel("BLEU")
        else:  # captions mode: retrieval quality against chunk length
            xs = [r["cost"]["chunk_seconds"] for r in rows]
            ys = [r["retrieval"].get("recall_at_k") or 0.0 for r in rows]
            ax.set_xlabel("chunk seconds (0.96 × lm)")
            ax.set_ylabel("recall@K (strict)")
        ax.plot(xs, ys, "o-", label=f"{size} terms")
        for x, y, r in zip(xs, ys, rows, strict=False):
            ax.annotate(f"lm{r['config']['lm']}", (x, y), fontsize="small")
    ax.legend(fontsize="small")
    ax.set_title("quality vs latency")
    fig.tight_layout()
    path = out / "quality_vs_latency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(6, 4))
    for lm in sorted({r["config"]["lm"] for r in reports}):
        rows = sorted(
            (r for r in reports if r["config"]["lm"] == lm), key=lambda r: r["glossary"]["entries"]
        )
        ax.plot(
            [r["glossary"]["entries"] for r in rows],
            [r["retrieval"].get("recall_at_k") or 0.0 for r in rows],
            "o-",
            label=f"lm={lm}",
        )
    ax.set_xscale("log")
    ax.set_xlabel("glossary entries")
    ax.set_ylabel("recall@K (strict)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize="small")
    ax.set_title("recall vs glossary size")
    fig.tight_layout()
    path = out / "recall_vs_glossary_size.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def sweep_table(reports: Sequence[dict[str, Any]]) -> str:
    """Markdown table of a sweep, one row per (glossary size, lm)."""
    lines = [
        "| glossary entries | lm | recall@10 strict | recall@10 late ok | precision | "
        "retrieval ms p50 | overhead ratio | processing ms p50 | BLEU | TERM_ACC | StreamLAAL ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted(reports, key=lambda r: (r["glossary"]["entries"], r["config"]["lm"])):
        ret, cost = r["retrieval"], r["cost"]
        lines.append(
            f"| {r['glossary']['entries']} | {r['config']['lm']} "
            f"| {_fmt(ret.get('recall_at_k'))} | {_fmt(ret.get('recall_at_k_late_ok'))} "
            f"| {_fmt(ret.get('precision'))} | {_fmt(cost['retrieval_ms']['p50'], 1)} "
            f"| {_fmt(cost['overhead_ratio'], 4)} | {_fmt(cost['processing_ms']['p50'], 1)} "
            f"| {_fmt(r.get('bleu'), 2)} | {_fmt(r.get('term_acc'))} | {_fmt(r.get('stream_laal'), 0)} |"
        )
    return "\n".join(lines) + "\n"
