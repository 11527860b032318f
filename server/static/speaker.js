// The speaker page: settings, glossary upload, microphone or file capture, and
// live rendering of the session's events. Protocol: docs/protocol.md.

import { el, TermBook, LinePanel, pageUrl, languageName } from "./captions.js";

const RATE = 16000;
const FRAME_SECONDS = 0.1;
const KEY_STORAGE = "rasst.apiKey";
// Audio kept for a resume after a dropped connection: what the server may have missed.
const AUDIO_LOG_SECONDS = 120;
const $ = (id) => document.getElementById(id);

const state = {
  ws: null,
  capture: null, // { stop(): Promise<void> } of the running audio source
  started: null, // the session.started event
  sending: false,
  ending: false,
  summary: null,
  terms: new TermBook(),
  captions: null,
  translations: new Map(), // lang -> LinePanel
  lastSeq: 0, // seq of the last event received (for session.resume)
  fatal: false, // a fatal error arrived: the close is the server's decision
  resuming: null, // { deadline } while reconnecting a dropped connection
  resumes: 0,
  audioLog: { start: 0, total: 0, frames: [] }, // recent audio, by absolute sample offset
};

// -- settings -----------------------------------------------------------------

function apiKey() {
  return $("api-key").value.trim();
}

function targetLanguages() {
  const checked = ["lang-de", "lang-zh", "lang-ja"].filter((id) => $(id).checked).map((id) => $(id).value);
  const others = $("lang-other")
    .value.split(/[\s,]+/)
    .map((code) => code.trim().toLowerCase())
    .filter(Boolean);
  return [...new Set([...checked, ...others])];
}

function glossaryIds() {
  return $("glossary-ids")
    .value.split(/[\s,]+/)
    .map((id) => id.trim())
    .filter(Boolean);
}

function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// -- banner -------------------------------------------------------------------

let bannerTimer = null;

function showBanner(kind, code, message) {
  const banner = $("banner");
  banner.className = `banner ${kind}`;
  banner.replaceChildren(el("strong", { class: "code", text: code }), " ", el("span", { text: message }));
  banner.hidden = false;
  clearTimeout(bannerTimer);
  // Errors stay until the next session; warnings fade, the lag pill keeps the live state.
  if (kind === "warning") bannerTimer = setTimeout(() => (banner.hidden = true), 8000);
}

function clearBanner() {
  clearTimeout(bannerTimer);
  $("banner").hidden = true;
}

function setStatus(name) {
  const status = $("status");
  status.dataset.state = name;
  status.textContent = name;
  const busy = name === "connecting" || name === "live" || name === "finishing" || name === "reconnecting";
  $("start-mic").disabled = busy;
  $("stream-file").disabled = busy;
  $("stop").disabled = !(name === "connecting" || name === "live" || name === "reconnecting");
}

// -- glossary upload ------------------------------------------------------------

async function uploadGlossary() {
  const file = $("glossary-file").files[0];
  const report = $("glossary-report");
  if (!file) {
    showBanner("error", "no_file", "choose a glossary file first (CSV, TSV, JSON, TBX or TMX)");
    return;
  }
  const form = new FormData();
  form.append("file", file, file.name);
  report.textContent = `uploading ${file.name}…`;
  let response;
  let body;
  try {
    response = await fetch(pageUrl("v1/glossaries"), { method: "POST", body: form, headers: authHeaders() });
    body = await response.json();
  } catch (error) {
    report.textContent = "";
    showBanner("error", "network_error", `upload failed: ${error}`);
    return;
  }
  if (!response.ok) {
    const err = body.error || {};
    const skipped = err.detail && err.detail.report ? err.detail.report.skipped || [] : [];
    const first = skipped[0] ? ` (line ${skipped[0].line ?? "?"}: ${skipped[0].reason})` : "";
    report.textContent = "";
    showBanner("error", err.code || `http_${response.status}`, `${err.message || "upload refused"}${first}`);
    return;
  }
  const r = body.report || {};
  const skipped = (r.skipped || []).length;
  report.textContent =
    `${body.id}: ${body.entry_count} entries` +
    (r.target_languages ? ` (${r.source_language} → ${r.target_languages.join(", ")})` : "") +
    (skipped ? `, ${skipped} rows skipped (first: ${r.skipped[0].reason})` : ", nothing skipped");
  const ids = glossaryIds().filter((id) => id !== body.id);
  $("glossary-ids").value = [...ids, body.id].join(", ");
}

// -- session ------------------------------------------------------------------

function resetView() {
  clearBanner();
  state.started = null;
  state.summary = null;
  state.sending = false;
  state.ending = false;
  state.lastSeq = 0;
  state.fatal = false;
  state.resuming = null;
  state.resumes = 0;
  state.audioLog = { start: 0, total: 0, frames: [] };
  state.terms = new TermBook();
  $("captions").replaceChildren();
  state.captions = new LinePanel($("captions"));
  $("translations").replaceChildren();
  state.translations.clear();
  $("terms").replaceChildren();
  $("summary").hidden = true;
  $("share").hidden = true;
  $("lag").hidden = true;
  $("mode").textContent = "";
}

function openSession() {
  resetView();
  setStatus("connecting");
  const ws = new WebSocket(pageUrl("v1/stream", { websocket: true }));
  wire(ws);
  ws.onopen = () => {
    const start = {
      type: "session.start",
      source_language: "en",
      target_languages: targetLanguages(),
      glossary_ids: glossaryIds(),
      lm: Number($("lm").value),
      audio: { encoding: "pcm_s16le", sample_rate: RATE, channels: 1 },
      client: "rasst-web",
    };
    if (apiKey()) start.api_key = apiKey();
    ws.send(JSON.stringify(start));
  };
  return ws;
}

function wire(ws) {
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.onmessage = (message) => {
    if (typeof message.data !== "string") return;
    const event = JSON.parse(message.data);
    if (event.seq) {
      if (event.seq <= state.lastSeq) return; // replayed after a resume, already shown
      state.lastSeq = event.seq;
    }
    if (event.type === "session.resumed") onResumed(ws, event);
    else handleEvent(event);
  };
  ws.onclose = (close) => onClosed(ws, close);
}

function onClosed(ws, close) {
  if (state.ws !== ws) return; // a connection already replaced
  state.ws = null;
  const token = state.started && state.started.resume_token;
  // 1006: the link died without a close frame. Anything else is the server's decision.
  if (token && !state.summary && !state.fatal && (state.resuming || close.code === 1006)) {
    if (!state.resuming) {
      const grace = state.started.limits.resume_grace_seconds || 0;
      state.resuming = { deadline: performance.now() + grace * 1000 };
      setStatus("reconnecting");
      showBanner("warning", "reconnecting", "the connection dropped; reconnecting without losing audio");
    }
    setTimeout(attemptResume, 1000);
    return;
  }
  state.resuming = null;
  state.sending = false;
  stopCapture();
  if (!state.summary && close.code !== 1000) {
    showBanner("error", `closed_${close.code}`, close.reason || "the connection to the server was lost");
  }
  setStatus(state.summary ? "ended" : "disconnected");
}

function attemptResume() {
  if (!state.resuming) return;
  if (performance.now() > state.resuming.deadline) {
    state.resuming = null;
    state.sending = false;
    stopCapture();
    showBanner("error", "resume_failed", "could not reconnect in time; start a new session");
    setStatus("disconnected");
    return;
  }
  const ws = new WebSocket(pageUrl("v1/stream", { websocket: true }));
  wire(ws);
  ws.onopen = () => {
    const resume = { type: "session.resume", resume_token: state.started.resume_token, last_seq: state.lastSeq };
    if (apiKey()) resume.api_key = apiKey();
    ws.send(JSON.stringify(resume));
  };
}

function onResumed(ws, event) {
  state.resuming = null;
  state.resumes += 1;
  setStatus(state.ending ? "finishing" : "live");
  showBanner("warning", "resumed", `reconnected at ${event.audio_received_seconds.toFixed(1)} s of audio`);
  if (event.input_ended) return;
  // What the server missed, then live audio again.
  let position = state.audioLog.start;
  for (const frame of state.audioLog.frames) {
    const end = position + frame.length;
    if (end > event.audio_received_samples) {
      ws.send(frame.slice(Math.max(0, event.audio_received_samples - position)).buffer);
    }
    position = end;
  }
  if (state.ending) ws.send(JSON.stringify({ type: "session.end" }));
}

function logAudio(buffer) {
  const log = state.audioLog;
  const frame = new Int16Array(buffer);
  log.frames.push(frame);
  log.total += frame.length;
  while (log.total - log.start > AUDIO_LOG_SECONDS * RATE && log.frames.length > 1) {
    log.start += log.frames.shift().length;
  }
}

function sendAudio(buffer) {
  if (!state.sending) return;
  logAudio(buffer);
  if (!state.resuming && state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(buffer);
}

async function stopCapture() {
  const capture = state.capture;
  state.capture = null;
  if (capture) await capture.stop();
}

async function endSession() {
  if ((!state.ws && !state.resuming) || state.ending) return;
  state.ending = true;
  if (!state.resuming) setStatus("finishing");
  await stopCapture(); // flushes the last partial frame first
  state.sending = false;
  // While reconnecting, onResumed sends it after the missed audio.
  if (!state.resuming && state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ type: "session.end" }));
  }
}

// -- audio sources ---------------------------------------------------------------

async function startMicrophone() {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (error) {
    showBanner("error", "microphone_unavailable", `${error.name}: ${error.message}`);
    return;
  }
  try {
    state.capture = await captureStream(stream);
  } catch (error) {
    for (const track of stream.getTracks()) track.stop();
    showBanner("error", "audio_capture_failed", `${error.name || "Error"}: ${error.message || error}`);
    return;
  }
  openSession();
}

// Microphone stream → worklet → 100 ms frames of 16 kHz PCM sent while the session is live.
async function captureStream(stream) {
  let context;
  let source;
  try {
    // 16 kHz in the browser saves the worklet any resampling; some browsers refuse a
    // microphone in a context of another rate, then the worklet resamples.
    context = new AudioContext({ sampleRate: RATE });
    source = context.createMediaStreamSource(stream);
  } catch {
    if (context) context.close();
    context = new AudioContext();
    source = context.createMediaStreamSource(stream);
  }
  await context.audioWorklet.addModule(pageUrl("static/pcm-worklet.js"));
  const node = new AudioWorkletNode(context, "pcm-capture", {
    processorOptions: { targetRate: RATE, frameSamples: RATE * FRAME_SECONDS },
  });
  let flushed = null;
  node.port.onmessage = (event) => {
    if (event.data instanceof ArrayBuffer) sendAudio(event.data);
    else if (event.data && event.data.flushed && flushed) flushed();
  };
  source.connect(node);
  // Silent sink: the worklet runs because the graph pulls it; nothing reaches the speakers.
  const sink = context.createGain();
  sink.gain.value = 0;
  node.connect(sink).connect(context.destination);
  await context.resume();
  return {
    async stop() {
      await Promise.race([
        new Promise((resolve) => {
          flushed = resolve;
          node.port.postMessage("flush");
        }),
        new Promise((resolve) => setTimeout(resolve, 500)),
      ]);
      for (const track of stream.getTracks()) track.stop();
      source.disconnect();
      node.disconnect();
      await context.close();
    },
  };
}

async function decodeFile(file) {
  // decodeAudioData resamples to the context's rate: 16 kHz, so no resampling here.
  const context = new OfflineAudioContext(1, 1, RATE);
  const audio = await context.decodeAudioData(await file.arrayBuffer());
  const pcm = new Int16Array(audio.length);
  for (let i = 0; i < audio.length; i++) {
    let mixed = 0;
    for (let c = 0; c < audio.numberOfChannels; c++) mixed += audio.getChannelData(c)[i];
    const x = Math.max(-1, Math.min(1, mixed / audio.numberOfChannels));
    pcm[i] = x < 0 ? x * 0x8000 : x * 0x7fff;
  }
  return pcm;
}

async function startFile() {
  const file = $("audio-file").files[0];
  if (!file) {
    showBanner("error", "no_file", "choose an audio file to stream first");
    return;
  }
  let pcm;
  try {
    pcm = await decodeFile(file);
  } catch (error) {
    showBanner("error", "unsupported_audio", `cannot decode ${file.name}: ${error.message || error}`);
    return;
  }
  const frame = RATE * FRAME_SECONDS;
  let offset = 0;
  let timer = null;
  let t0 = null;
  // Sent at real time, scheduled against the start time so timer jitter never accumulates.
  const tick = () => {
    if (!state.sending) {
      timer = setTimeout(tick, 20);
      return;
    }
    if (t0 === null) t0 = performance.now();
    const due = Math.min(pcm.length, Math.floor(((performance.now() - t0) / 1000) * RATE) + frame);
    while (offset < due) {
      const end = Math.min(offset + frame, pcm.length);
      sendAudio(pcm.slice(offset, end).buffer);
      offset = end;
    }
    if (offset >= pcm.length) {
      timer = null;
      endSession();
      return;
    }
    timer = setTimeout(tick, FRAME_SECONDS * 1000);
  };
  state.capture = {
    async stop() {
      if (timer !== null) clearTimeout(timer);
      timer = null;
    },
  };
  openSession();
  tick();
}

// -- events -------------------------------------------------------------------

function translationPanel(lang) {
  let panel = state.translations.get(lang);
  if (!panel) {
    const lines = el("div", { class: "lines translation", id: `translation-${lang}`, lang });
    $("translations").append(el("h3", { text: languageName(lang) }), lines);
    panel = new LinePanel(lines);
    panel.revising = null; // first_chunk of the run the revisable text belongs to
    state.translations.set(lang, panel);
  }
  return panel;
}

function onStarted(event) {
  state.started = event;
  state.sending = true;
  setStatus("live");
  const captionsOnly = event.mode === "captions";
  $("mode").textContent = captionsOnly
    ? "captions mode: no translation model configured; terms show their translations"
    : `translating into ${event.target_languages.join(", ")}`;
  if (!captionsOnly) for (const lang of event.target_languages) translationPanel(lang);
  if (event.viewer_token) showShare(event);
}

function showShare(event) {
  const token = encodeURIComponent(event.viewer_token);
  const link = pageUrl(`view/${token}`);
  $("viewer-link").href = link.href;
  $("viewer-link").textContent = link.href;
  $("qr").src = pageUrl(`v1/view/${token}/qr.svg`).href;
  const links = [el("span", { text: "Subtitles: " })];
  for (const lang of [event.source_language, ...event.target_languages]) {
    for (const fmt of ["srt", "vtt"]) {
      const href = pageUrl(`v1/view/${token}/subtitles.${fmt}?lang=${encodeURIComponent(lang)}`).href;
      links.push(el("a", { href, download: `${event.session_id}.${lang}.${fmt}`, text: `${lang}.${fmt}` }), " ");
    }
  }
  $("subtitle-links").replaceChildren(...links);
  $("share").hidden = false;
}

function onTerms(event) {
  if (!state.terms.add(event.terms)) return;
  const langs = state.started ? state.started.target_languages : [];
  state.captions.setNeedles(state.terms.sourceNeedles(langs.length === 1 ? langs[0] : undefined));
  for (const [lang, panel] of state.translations) panel.setNeedles(state.terms.targetNeedles(lang));
  const items = state.terms.recent().map((term) =>
    el(
      "li",
      {},
      el("span", { class: "term-source", text: term.source }),
      ...Object.entries(term.targets).map(([lang, target]) =>
        el("span", { class: "term-target", lang, text: `${lang}: ${target}` }),
      ),
    ),
  );
  $("terms").replaceChildren(...items);
}

function onLag(seconds) {
  const lag = $("lag");
  lag.hidden = false;
  lag.textContent = `lag ${seconds.toFixed(1)} s`;
  lag.dataset.level = seconds < 1 ? "ok" : seconds < 3 ? "warn" : "bad";
}

function onSummary(event) {
  state.summary = event;
  state.sending = false;
  stopCapture();
  const lat = event.latency_ms || {};
  const rows = [
    ["ended", event.reason],
    ["audio", `${event.audio_seconds.toFixed(1)} s in ${event.chunks} chunks`],
    ["captions", event.captions],
    ["term hits", event.term_hits],
    ["translations", event.commits],
    ["latency p50 / p95", `${Math.round(lat.p50 || 0)} / ${Math.round(lat.p95 || 0)} ms`],
    ["max lag", `${event.max_lag_seconds.toFixed(1)} s`],
    ["warnings / errors", `${event.warnings} / ${event.errors}`],
  ];
  const list = el("dl");
  for (const [name, value] of rows) list.append(el("dt", { text: name }), el("dd", { text: value }));
  $("summary").replaceChildren(el("h2", { text: "Summary" }), list);
  $("summary").hidden = false;
  setStatus("ended");
}

// One entry point for every server event; the browser tests also inject events here.
export function handleEvent(event) {
  switch (event.type) {
    case "session.started":
      onStarted(event);
      break;
    case "caption":
      if (event.final) {
        state.captions.commit(event.text, event.start);
        state.captions.setPartial("");
      } else {
        state.captions.setPartial(event.text);
      }
      break;
    case "terms":
      onTerms(event);
      break;
    case "translation.delta": {
      const panel = translationPanel(event.lang);
      panel.revising = event.first_chunk;
      panel.setPartial(event.text);
      break;
    }
    case "translation.commit": {
      const panel = translationPanel(event.lang);
      panel.commit(event.text, event.start);
      if (panel.revising === null || panel.revising <= event.chunk) panel.setPartial("");
      break;
    }
    case "chunk.done":
      onLag(event.lag_seconds);
      break;
    case "warning":
      showBanner("warning", event.code, event.message);
      break;
    case "error":
      showBanner("error", event.code, event.message);
      if (event.fatal) {
        state.sending = false;
        state.fatal = true;
      }
      break;
    case "glossary.updated":
      $("glossary-report").textContent = `glossaries updated: ${event.glossaries
        .map((g) => `${g.id} v${g.version} (${g.entries})`)
        .join(", ")}`;
      break;
    case "session.summary":
      onSummary(event);
      break;
    default:
      break; // unknown event types are ignored (protocol versioning rule)
  }
}

function init() {
  state.captions = new LinePanel($("captions"));
  $("api-key").value = sessionStorage.getItem(KEY_STORAGE) || "";
  $("api-key").addEventListener("change", () => sessionStorage.setItem(KEY_STORAGE, apiKey()));
  $("glossary-upload").addEventListener("click", uploadGlossary);
  $("start-mic").addEventListener("click", startMicrophone);
  $("stream-file").addEventListener("click", startFile);
  $("stop").addEventListener("click", endSession);
  window.rasstSpeaker = { handleEvent, state };
  document.body.dataset.ready = "true";
}

init();
