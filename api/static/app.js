// citeqa web chat: plain JavaScript, no build step, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const store = {
  get session() { return localStorage.getItem("citeqa.session"); },
  set session(v) { v ? localStorage.setItem("citeqa.session", v) : localStorage.removeItem("citeqa.session"); },
  get key() { return localStorage.getItem("citeqa.key") || ""; },
  set key(v) { v ? localStorage.setItem("citeqa.key", v) : localStorage.removeItem("citeqa.key"); },
};
let chatAvailable = true;
let busy = false;

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (store.key) h["Authorization"] = "Bearer " + store.key;
  return h;
}

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function failure(response) {
  let code = "http_" + response.status, message = response.statusText || "request failed";
  try {
    const body = await response.json();
    if (body && body.error) { code = body.error.code; message = body.error.message; }
  } catch (_) { /* not JSON: keep the status line */ }
  return new ApiError(response.status, code, message);
}

async function api(method, path, body, extraHeaders) {
  const init = { method, headers: headers(extraHeaders) };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  return response;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children || []) node.append(child);
  return node;
}

// ----- rendering -----------------------------------------------------------------------------------

function newTurn(question) {
  $("intro").hidden = true;
  const answer = el("div", { class: "answer streaming" }, [el("p", { class: "text" })]);
  const turn = el("li", { class: "turn" }, [el("div", { class: "question", text: question }), answer]);
  $("log").append(turn);
  turn.scrollIntoView({ block: "end" });
  return answer;
}

function renderAnswerText(node, text, citations) {
  node.textContent = "";
  const byN = new Map((citations || []).map((c) => [c.n, c]));
  for (const part of text.split(/(\[\d+\])/)) {
    const m = /^\[(\d+)\]$/.exec(part);
    const citation = m && byN.get(Number(m[1]));
    if (citation) {
      const a = el("a", { class: "cite", href: "#", text: part, "aria-label": "source " + citation.n + ": " +
        (citation.title || citation.doc_id) });
      a.addEventListener("click", (e) => { e.preventDefault(); openArticle(citation); });
      node.append(a);
    } else {
      node.append(part);
    }
  }
}

function renderAnswer(box, result) {
  box.classList.remove("streaming");
  box.classList.toggle("refused", !!result.refused);
  box.dataset.refused = result.refused ? "true" : "false";
  const resolved = result.standalone_question || result.rewritten_question;
  if (resolved && resolved !== result.question) {
    box.prepend(el("p", { class: "resolved", text: "Read as: " + resolved }));
  }
  renderAnswerText(box.querySelector(".text"), result.answer, result.citations);
  const citations = result.citations || [];
  if (citations.length) {
    box.append(el("p", { class: "sources-head",
      text: result.refused ? "Closest passages:" : "Sources:" }));
    const list = el("ol", { class: "sources" });
    for (const c of citations) {
      const item = el("li", { class: "source" + (c.supports === false || result.refused ? " closest" : ""),
        "data-n": String(c.n) });
      item.append(el("span", { class: "num", text: "[" + c.n + "]" }), el("span", { class: "title",
        text: c.title || c.doc_id }));
      if (c.url) {
        item.append(el("a", { class: "url", href: c.url, rel: "noopener noreferrer", target: "_blank", text: c.url }));
      }
      item.append(el("blockquote", {}, [el("mark", { text: c.quote })]));
      const open = el("button", { type: "button", text: "Show in article" });
      open.addEventListener("click", () => openArticle(c));
      item.append(open);
      list.append(item);
    }
    box.append(list);
  }
  if (result.timings_ms && result.timings_ms.total !== undefined) {
    box.append(el("p", { class: "timings", text: "answered in " + Math.round(result.timings_ms.total) + " ms" }));
  }
}

// ----- the article viewer -------------------------------------------------------------------------

async function openArticle(citation) {
  showError("");
  try {
    const doc = await (await api("GET", "/v1/documents/" + encodeURIComponent(citation.doc_id))).json();
    const viewer = $("viewer");
    $("viewer-title").textContent = doc.title || doc.doc_id;
    const meta = [doc.doc_id, doc.published, doc.url].filter(Boolean).join(" · ");
    $("viewer-meta").textContent = meta;
    const text = $("viewer-text");
    text.textContent = "";
    const start = citation.char_start, end = citation.char_end;
    const mark = el("mark", { id: "highlight", text: doc.text.slice(start, end) });
    text.append(doc.text.slice(0, start), mark, doc.text.slice(end));
    viewer.hidden = false;
    mark.scrollIntoView({ block: "center" });
    text.focus({ preventScroll: true });
  } catch (err) {
    showError("Could not open the article: " + err.message);
  }
}

// ----- asking --------------------------------------------------------------------------------------

async function ensureSession() {
  if (!chatAvailable) return null;
  if (store.session) return store.session;
  try {
    const body = await (await api("POST", "/v1/chat/sessions", {})).json();
    store.session = body.session_id;
    return body.session_id;
  } catch (err) {
    if (err.status === 404 || err.status === 503 || err.status === 405) { chatAvailable = false; return null; }
    throw err;
  }
}

async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data += (data ? "\n" : "") + line.slice(5).replace(/^ /, "");
      }
      if (data) onEvent(name, JSON.parse(data));
    }
  }
}

async function ask(question, retried) {
  const session = await ensureSession();
  const path = session ? "/v1/chat/sessions/" + encodeURIComponent(session) + "/messages" : "/v1/ask";
  let response;
  try {
    response = await api("POST", path, { question }, { Accept: "text/event-stream" });
  } catch (err) {
    if (session && err.code === "session_not_found" && !retried) { store.session = null; return ask(question, true); }
    throw err;
  }
  const box = newTurn(question);
  const text = box.querySelector(".text");
  if (!(response.headers.get("content-type") || "").includes("text/event-stream")) {
    renderAnswer(box, await response.json());
    return;
  }
  let final = null;
  await readEvents(response, (name, data) => {
    if (name === "delta") { text.append(data.text); }
    else if (name === "done") { final = data; }
    else if (name === "error") { throw new ApiError(500, data.error.code, data.error.message); }
  });
  if (!final) throw new ApiError(500, "incomplete", "the answer stream ended early");
  renderAnswer(box, final);
}

async function submitQuestion(event) {
  event.preventDefault();
  const input = $("question");
  const question = input.value.trim();
  if (!question || busy) return;
  busy = true;
  $("ask-button").disabled = true;
  showError("");
  try {
    await ask(question, false);
    input.value = "";
  } catch (err) {
    const stale = document.querySelector(".answer.streaming");
    if (stale) stale.closest(".turn").remove();
    showError(err.code === "unauthorized" ? "The server needs an API key: enter it under “Add an article”."
      : err.message);
  } finally {
    busy = false;
    $("ask-button").disabled = false;
    input.focus();
  }
}

// ----- history, adding articles, start-up ------------------------------------------------------------

async function restoreHistory() {
  if (!store.session) return;
  try {
    const session = await (await api("GET", "/v1/chat/sessions/" + encodeURIComponent(store.session))).json();
    for (const turn of session.turns || []) renderAnswer(newTurn(turn.question), turn);
  } catch (err) {
    if (err.status === 404) store.session = null;
    else if (err.status === 503) chatAvailable = false;
    else showError("Could not load the conversation: " + err.message);
  }
}

async function addArticle(body) {
  const out = $("add-result");
  out.textContent = "Indexing…";
  try {
    const result = await (await api("POST", "/v1/documents", body)).json();
    out.textContent = result.status + ": " + result.doc_id + " (" + result.passages + " passages)";
    refreshStatus();
    return true;
  } catch (err) {
    out.textContent = "";
    showError(err.code === "unauthorized" ? "Adding articles needs the server's API key." : err.message);
    return false;
  }
}

async function refreshStatus() {
  try {
    const ready = await (await fetch("/readyz")).json();
    $("status").textContent = ready.status === "ready"
      ? ready.documents + " articles, " + ready.passages + " passages indexed" : "starting…";
  } catch (_) {
    $("status").textContent = "server unreachable";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("ask-form").addEventListener("submit", submitQuestion);
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("ask-form").requestSubmit(); }
  });
  $("new-chat").addEventListener("click", () => {
    store.session = null;
    $("log").textContent = "";
    $("intro").hidden = false;
    showError("");
    $("question").focus();
  });
  $("viewer-close").addEventListener("click", () => { $("viewer").hidden = true; });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("viewer").hidden = true; });
  $("api-key").value = store.key;
  $("api-key").addEventListener("change", (e) => { store.key = e.target.value.trim(); });
  $("paste-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { text: $("paste-text").value };
    if ($("paste-title").value.trim()) body.title = $("paste-title").value.trim();
    if ($("paste-url").value.trim()) body.url = $("paste-url").value.trim();
    if (await addArticle(body)) e.target.reset();
  });
  $("upload-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = $("upload-file").files[0];
    if (!file) return;
    const form = new FormData();
    form.append("file", file, file.name);
    if (await addArticle(form)) e.target.reset();
  });
  refreshStatus();
  restoreHistory();
  $("question").focus();
});
