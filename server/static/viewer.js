// The audience viewer: a read-only follower of one session's events
// (`/v1/view/{token}`), showing one language. `?lang=de` picks the language,
// `?overlay=1` the full-screen projection style, `?obs=1` the OBS browser-source
// overlay: transparent background, large outlined text, `lines=N` lines (1-10,
// default 2), `terms=0` without term marks, `size=PX` text size, `partial=0` only
// finished lines (docs/integrations.md).

import { el, TermBook, LinePanel, pageUrl, languageName } from "./captions.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const obs = params.get("obs") === "1";
const overlay = obs || params.get("overlay") === "1";
const showTerms = params.get("terms") !== "0";
const showPartial = params.get("partial") !== "0";

function intParam(name, fallback, low, high) {
  const value = Number.parseInt(params.get(name) || "", 10);
  return Number.isFinite(value) ? Math.min(high, Math.max(low, value)) : fallback;
}

const maxLines = obs ? intParam("lines", 2, 1, 10) : overlay ? 3 : 1000;

const state = {
  lang: params.get("lang") || "",
  started: null,
  ended: false,
  events: [], // the events that shape the display, replayed on a language change
  terms: new TermBook(),
  panel: null,
  revising: null,
  ws: null,
  retry: 0,
};

function setStatus(name) {
  $("status").dataset.state = name;
  $("status").textContent = name;
}

function showBanner(kind, code, message) {
  const banner = $("banner");
  banner.className = `banner ${kind}`;
  banner.replaceChildren(el("strong", { class: "code", text: code }), " ", el("span", { text: message }));
  banner.hidden = false;
}

function sourceLang() {
  return state.started ? state.started.source_language : "en";
}

// Captions-only sessions have no translations: the viewer then shows the
// source captions with the terms' translations next to them.
function showsTranslation() {
  return state.started && state.started.mode === "translation" && state.lang !== sourceLang();
}

function resetDisplay() {
  $("lines").replaceChildren();
  state.panel = new LinePanel($("lines"), { maxLines });
  state.revising = null;
  applyNeedles();
  const notice = $("notice");
  const glossing = state.started && !showsTranslation() && state.lang !== sourceLang();
  notice.hidden = !glossing;
  notice.textContent = glossing
    ? `No live translation in this session: original captions, glossary terms in ${languageName(state.lang)}.`
    : "";
}

function applyNeedles() {
  if (!state.panel || !showTerms) return;
  if (showsTranslation()) state.panel.setNeedles(state.terms.targetNeedles(state.lang));
  else state.panel.setNeedles(state.terms.sourceNeedles(state.lang), { gloss: state.lang !== sourceLang() });
}

function render(event) {
  switch (event.type) {
    case "caption":
      if (showsTranslation()) return;
      if (event.final) {
        state.panel.commit(event.text, overlay ? undefined : event.start);
        state.panel.setPartial("");
      } else if (showPartial) {
        state.panel.setPartial(event.text);
      }
      break;
    case "translation.delta":
      if (!showsTranslation() || event.lang !== state.lang) return;
      state.revising = event.first_chunk;
      if (showPartial) state.panel.setPartial(event.text);
      break;
    case "translation.commit":
      if (!showsTranslation() || event.lang !== state.lang) return;
      state.panel.commit(event.text, overlay ? undefined : event.start);
      if (state.revising === null || state.revising <= event.chunk) state.panel.setPartial("");
      break;
    case "terms":
      if (state.terms.add(event.terms)) applyNeedles();
      break;
    default:
      break;
  }
}

function chooseLanguage(lang) {
  const started = state.started;
  const known = started ? [started.source_language, ...started.target_languages] : [];
  state.lang = known.includes(lang) ? lang : known.length > 1 ? known[1] : sourceLang();
  if (started) $("lang").value = state.lang;
  const url = new URL(location.href);
  url.searchParams.set("lang", state.lang);
  history.replaceState(null, "", url);
  $("overlay-link").href = `${url.pathname}?lang=${encodeURIComponent(state.lang)}&overlay=1`;
  resetDisplay();
  for (const event of state.events) render(event);
  showEnded();
}

function onStarted(event) {
  state.started = event;
  const select = $("lang");
  select.replaceChildren(
    ...[event.source_language, ...event.target_languages].map((code) =>
      el("option", { value: code, text: code === event.source_language ? `${languageName(code)} · original` : languageName(code) }),
    ),
  );
  chooseLanguage(state.lang || params.get("lang") || event.target_languages[0] || event.source_language);
}

function showEnded() {
  const footer = $("ended");
  if (!state.ended || !state.started) {
    footer.hidden = true;
    return;
  }
  const links = ["srt", "vtt"].map((fmt) =>
    el("a", {
      href: pageUrl(`../v1/view/${encodeURIComponent(token)}/subtitles.${fmt}?lang=${encodeURIComponent(state.lang)}`).href,
      download: `${state.started.session_id}.${state.lang}.${fmt}`,
      text: fmt.toUpperCase(),
    }),
  );
  footer.replaceChildren("The session has ended. Subtitles: ", links[0], " · ", links[1]);
  footer.hidden = false;
}

export function handleEvent(event) {
  switch (event.type) {
    case "session.started":
      onStarted(event);
      setStatus("live");
      return;
    case "session.summary":
      state.ended = true;
      setStatus("ended");
      showEnded();
      return;
    case "error":
      showBanner("error", event.code, event.message);
      return;
    case "caption":
    case "translation.delta":
    case "translation.commit":
    case "terms":
      state.events.push(event);
      if (state.panel) render(event);
      return;
    default:
      return; // chunk.done, warnings, unknown types: not for the audience
  }
}

function connect() {
  // Every (re)connection replays the session from its start: begin from a clean slate.
  state.events = [];
  state.terms = new TermBook();
  state.ended = false;
  resetDisplay();
  setStatus("connecting");
  const ws = new WebSocket(pageUrl(`../v1/view/${encodeURIComponent(token)}`, { websocket: true }));
  state.ws = ws;
  ws.onopen = () => (state.retry = 0);
  ws.onmessage = (message) => handleEvent(JSON.parse(message.data));
  ws.onclose = (close) => {
    if (state.ended || close.code === 1000) {
      setStatus("ended");
      return;
    }
    if (close.code === 1008) {
      setStatus("closed");
      return; // unknown link or refused: retrying would not help
    }
    // A dropped network (phones!) or a restart: come back with a growing pause.
    state.retry += 1;
    const delay = Math.min(15, 2 ** Math.min(state.retry, 4));
    setStatus(`reconnecting in ${delay} s`);
    setTimeout(connect, delay * 1000);
  };
}

function init() {
  document.documentElement.classList.toggle("overlay", overlay);
  document.body.classList.toggle("overlay", overlay);
  document.documentElement.classList.toggle("obs", obs);
  document.body.classList.toggle("obs", obs);
  // CSSOM, not an inline style attribute: the page's CSP allows only its own styles.
  if (obs) document.documentElement.style.setProperty("--obs-lines", String(maxLines));
  if (obs && params.has("size")) {
    document.documentElement.style.setProperty("--obs-size", `${intParam("size", 56, 12, 200)}px`);
  }
  $("lang").addEventListener("change", (event) => chooseLanguage(event.target.value));
  window.rasstViewer = { handleEvent, state };
  connect();
  document.body.dataset.ready = "true";
}

init();
