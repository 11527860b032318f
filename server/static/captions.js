// Shared by the speaker page and the audience viewer: rendering of captions,
// translations and glossary terms. All text goes through text nodes (never
// innerHTML): captions, translations and glossary entries are untrusted.

const WORD_CHAR = /[\p{L}\p{N}]/u;
const WIDE_CHAR = /[\u2e80-\u2fdf\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]/u;

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// The glossary terms retrieved so far in a session, by lower-cased source.
export class TermBook {
  constructor() {
    this.terms = new Map();
  }

  // Adds the terms of a `terms` event; true when something new arrived.
  add(terms) {
    let changed = false;
    for (const term of terms || []) {
      const key = String(term.source).toLowerCase();
      const known = this.terms.get(key);
      const targets = { ...(known ? known.targets : {}), ...(term.targets || {}) };
      if (!known || JSON.stringify(known.targets) !== JSON.stringify(targets)) changed = true;
      this.terms.set(key, { source: String(term.source), targets, seen: Date.now(), score: term.score });
    }
    return changed;
  }

  recent(limit = 30) {
    return [...this.terms.values()].sort((a, b) => b.seen - a.seen).slice(0, limit);
  }

  // Needles to mark in source-language text; the title says what each term becomes.
  sourceNeedles(lang) {
    return [...this.terms.values()].map((t) => ({
      needle: t.source,
      title: describe(t, lang),
      gloss: lang ? t.targets[lang] : undefined,
    }));
  }

  // Needles to mark in a translation: the term's rendering in that language.
  targetNeedles(lang) {
    return [...this.terms.values()]
      .filter((t) => t.targets[lang])
      .map((t) => ({ needle: t.targets[lang], title: `${t.source} → ${t.targets[lang]}` }));
  }
}

function describe(term, lang) {
  const entries = Object.entries(term.targets);
  if (lang && term.targets[lang]) return `${term.source} → ${term.targets[lang]}`;
  if (entries.length === 0) return term.source;
  return `${term.source} → ${entries.map(([l, t]) => `${l}: ${t}`).join(", ")}`;
}

// Where the needles occur in `text`: non-overlapping, longest first, whole words
// for scripts with spaces (a CJK needle may sit anywhere).
export function findMarks(text, needles) {
  const sorted = needles
    .filter((n) => n.needle && n.needle.trim())
    .map((n) => ({ ...n, lower: n.needle.toLowerCase() }))
    .sort((a, b) => b.needle.length - a.needle.length);
  const marks = [];
  let i = 0;
  while (i < text.length && sorted.length) {
    const hit = sorted.find((n) => matchesAt(text, i, n));
    if (hit) {
      marks.push({ start: i, end: i + hit.needle.length, needle: hit });
      i += hit.needle.length;
    } else {
      i += 1;
    }
  }
  return marks;
}

function matchesAt(text, i, needle) {
  const slice = text.slice(i, i + needle.needle.length);
  if (slice.toLowerCase() !== needle.lower) return false;
  const first = needle.needle[0];
  const last = needle.needle[needle.needle.length - 1];
  const before = text[i - 1];
  const after = text[i + needle.needle.length];
  const boundary = (inner, outer) =>
    !outer || !WORD_CHAR.test(inner) || WIDE_CHAR.test(inner) || !WORD_CHAR.test(outer) || WIDE_CHAR.test(outer);
  return boundary(first, before) && boundary(last, after);
}

// Fills `parent` with `text`, terms wrapped in <mark title="source → target">;
// with `gloss`, the term's translation follows the mark (for captions-only sessions).
export function renderMarked(parent, text, needles, { gloss = false } = {}) {
  parent.replaceChildren();
  let at = 0;
  for (const mark of findMarks(text, needles)) {
    if (mark.start > at) parent.append(document.createTextNode(text.slice(at, mark.start)));
    parent.append(el("mark", { title: mark.needle.title, text: text.slice(mark.start, mark.end) }));
    if (gloss && mark.needle.gloss) parent.append(el("span", { class: "gloss", text: mark.needle.gloss }));
    at = mark.end;
  }
  if (at < text.length) parent.append(document.createTextNode(text.slice(at)));
}

// A scrolling list of committed lines plus one revisable line at the end.
export class LinePanel {
  constructor(container, { maxLines = 500 } = {}) {
    this.container = container;
    this.maxLines = maxLines;
    this.lines = [];
    this.needles = [];
    this.gloss = false;
    this.partial = el("p", { class: "partial", hidden: true });
    this.partialText = "";
    container.append(this.partial);
  }

  clear() {
    for (const line of this.lines) line.node.remove();
    this.lines = [];
    this.setPartial("");
  }

  // A final (committed) line; `start` in seconds of audio, shown as a time stamp.
  commit(text, start) {
    if (!text) return;
    const node = el("p", { class: "final", "data-start": start });
    const body = el("span", { class: "text" });
    if (typeof start === "number") node.append(el("span", { class: "time", text: clock(start) }));
    node.append(body);
    renderMarked(body, text, this.needles, { gloss: this.gloss });
    this.container.insertBefore(node, this.partial);
    this.lines.push({ node, body, text });
    while (this.lines.length > this.maxLines) this.lines.shift().node.remove();
    this.scroll();
  }

  // The revisable text (a partial caption, a translation still being written).
  setPartial(text) {
    this.partialText = text || "";
    this.partial.hidden = !this.partialText;
    renderMarked(this.partial, this.partialText, this.needles, { gloss: this.gloss });
    this.scroll();
  }

  setNeedles(needles, { gloss = false } = {}) {
    this.needles = needles;
    this.gloss = gloss;
    for (const line of this.lines) renderMarked(line.body, line.text, needles, { gloss });
    renderMarked(this.partial, this.partialText, needles, { gloss });
  }

  finalTexts() {
    return this.lines.map((line) => line.text);
  }

  scroll() {
    this.container.scrollTop = this.container.scrollHeight;
  }
}

export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

// Builds a same-origin URL relative to the page, so the pages also work behind a path prefix.
export function pageUrl(path, { websocket = false } = {}) {
  const url = new URL(path, document.baseURI);
  if (websocket) url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url;
}

export const LANGUAGE_NAMES = {
  en: "English",
  de: "Deutsch",
  zh: "中文",
  ja: "日本語",
  fr: "Français",
  es: "Español",
  it: "Italiano",
  ko: "한국어",
};

export function languageName(code) {
  return LANGUAGE_NAMES[code] ? `${LANGUAGE_NAMES[code]} (${code})` : code;
}
