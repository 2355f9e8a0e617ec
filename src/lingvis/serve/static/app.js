// lingvis web page: chat and translation (streamed over SSE), questions about an uploaded image, text-to-image
// search.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], history: [], image: null, chatImage: null, controller: null, translating: false };

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function status(text, isError) {
  $("status").textContent = text || "";
  $("status").className = isError ? "error" : "";
}

async function errorText(response) {
  try {
    const data = await response.json();
    if (data.error) return data.error.message;
  } catch (e) { /* not JSON */ }
  return response.status + " " + response.statusText;
}

async function api(path, body) {
  const response = await fetch(path, {
    method: body ? "POST" : "GET", headers: headers(), body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) throw new Error(await errorText(response));
  return response.json();
}

function fillSelect(select, models) {
  select.innerHTML = "";
  for (const m of models) {
    const opt = document.createElement("option");
    opt.value = m.id;
    opt.textContent = m.id + " (" + m.kind + ")";
    select.appendChild(opt);
  }
  const panel = select.closest(".panel");
  panel.classList.toggle("off", models.length === 0);
  panel.querySelector(".hint").hidden = models.length > 0;
}

const hasCap = (cap) => (m) => (m.capabilities || []).includes(cap);
const imageCaps = ["caption", "vqa", "zero_shot"];

async function loadModels() {
  try {
    state.models = (await api("/v1/models")).data;
  } catch (e) {
    status("cannot list models: " + e.message, true);
    return;
  }
  fillSelect($("chat-model"), state.models.filter((m) => m.kind === "causal_lm" || hasCap("image_chat")(m)));
  showAttach();
  fillSelect($("translate-model"), state.models.filter((m) => m.kind === "translation"));
  showTargets();
  fillSelect($("image-model"), state.models.filter((m) => imageCaps.some((c) => hasCap(c)(m))));
  fillSelect($("search-model"), state.models.filter(hasCap("image_search")));
  showImageActions();
  status(state.models.length + " model(s) ready");
}

function currentModel(select) {
  return state.models.find((m) => m.id === $(select).value);
}

// ----- chat -------------------------------------------------------------------------------------
function bubble(role, text, image) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  if (image) {
    const img = document.createElement("img");
    img.src = image;
    img.alt = "attached image";
    div.appendChild(img);
    div.appendChild(document.createTextNode(text));
  } else {
    div.textContent = text;
  }
  $("chat-log").appendChild(div);
  $("chat-log").scrollTop = $("chat-log").scrollHeight;
  return div;
}

// Parse a server-sent-event stream; call onData for every JSON `data:` payload until [DONE].
async function readSSE(response, onData) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        onData(JSON.parse(data));
      }
    }
  }
}

async function sendChat(event) {
  event.preventDefault();
  const text = $("chat-input").value.trim();
  if (!text || state.controller) return;
  $("chat-input").value = "";
  const image = state.chatImage;
  // an attached image travels as an OpenAI image_url content part (a data: URL) and stays in the history
  state.history.push({ role: "user", content: image
    ? [{ type: "image_url", image_url: { url: image } }, { type: "text", text }] : text });
  bubble("user", text, image);
  clearAttachment();
  const reply = bubble("assistant", "");
  state.controller = new AbortController();
  $("chat-send").disabled = true;
  $("chat-stop").disabled = false;
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(), signal: state.controller.signal,
      body: JSON.stringify({
        model: $("chat-model").value, messages: state.history, stream: true,
        temperature: Number($("chat-temperature").value), max_tokens: Number($("chat-max-tokens").value),
      }),
    });
    if (!response.ok) throw new Error(await errorText(response));
    await readSSE(response, (chunk) => {
      if (chunk.error) throw new Error(chunk.error.message);
      const piece = chunk.choices.length ? chunk.choices[0].delta.content : null;
      if (piece) {
        reply.textContent += piece;
        $("chat-log").scrollTop = $("chat-log").scrollHeight;
      }
    });
    state.history.push({ role: "assistant", content: reply.textContent });
  } catch (e) {
    if (e.name === "AbortError") {
      state.history.push({ role: "assistant", content: reply.textContent });
    } else {
      reply.classList.add("error");
      reply.textContent += (reply.textContent ? "\n" : "") + "error: " + e.message;
      state.history.pop();
    }
  } finally {
    state.controller = null;
    $("chat-send").disabled = false;
    $("chat-stop").disabled = true;
  }
}

// The image attachment of the chat: shown for models that read images (capability image_chat).
function showAttach() {
  const model = currentModel("chat-model");
  const can = !!model && hasCap("image_chat")(model);
  $("chat-attach").hidden = !can;
  if (!can) clearAttachment();
}

function clearAttachment() {
  state.chatImage = null;
  $("chat-image").value = "";
  $("chat-image-preview").hidden = true;
}

function attachImage() {
  const file = $("chat-image").files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    state.chatImage = reader.result;
    $("chat-image-preview").src = state.chatImage;
    $("chat-image-preview").hidden = false;
  };
  reader.readAsDataURL(file);
}

// ----- translation ------------------------------------------------------------------------------
// The target languages of the chosen model; a one-target model needs no choice.
function showTargets() {
  const model = currentModel("translate-model");
  const langs = (model && model.target_languages) || [];
  const select = $("translate-target");
  select.innerHTML = "";
  for (const lang of langs) {
    const opt = document.createElement("option");
    opt.value = opt.textContent = lang;
    select.appendChild(opt);
  }
  $("translate-target-label").hidden = !(model && model.target_lang_required);
}

async function translate(event) {
  event.preventDefault();
  const text = $("translate-input").value.trim();
  if (!text || state.translating) return;
  const model = currentModel("translate-model");
  const out = $("translate-output");
  out.textContent = "";
  out.classList.remove("error");
  const body = { model: $("translate-model").value, prompt: text, stream: true };
  if (model && model.target_lang_required) body.target_lang = $("translate-target").value;
  const beams = Number($("translate-beams").value);
  if (beams > 1) body.num_beams = beams;
  state.translating = true;
  $("translate-run").disabled = true;
  try {
    const response = await fetch("/v1/completions", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if (!response.ok) throw new Error(await errorText(response));
    await readSSE(response, (chunk) => {
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.choices.length && chunk.choices[0].text) out.textContent += chunk.choices[0].text;
    });
  } catch (e) {
    out.classList.add("error");
    out.textContent += (out.textContent ? "\n" : "") + "error: " + e.message;
  } finally {
    state.translating = false;
    $("translate-run").disabled = false;
  }
}

// ----- image questions --------------------------------------------------------------------------
function showImageActions() {
  const model = currentModel("image-model");
  for (const row of document.querySelectorAll(".image-actions [data-cap]")) {
    row.hidden = !model || !hasCap(row.dataset.cap)(model);
  }
}

function readImage() {
  const file = $("image-file").files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    state.image = reader.result;
    $("image-preview").src = state.image;
    $("image-preview").hidden = false;
    $("image-result").textContent = "";
  };
  reader.readAsDataURL(file);
}

function showAnswer(text) {
  const div = document.createElement("div");
  div.className = "answer";
  div.textContent = text;
  $("image-result").replaceChildren(div);
}

function showScores(items) {
  const rows = items.map(({ label, score }) => {
    const row = document.createElement("div");
    row.className = "bar";
    const name = document.createElement("span");
    name.textContent = label;
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = Math.round(score * 100) + "%";
    const value = document.createElement("span");
    value.textContent = (score * 100).toFixed(1) + "%";
    row.append(name, fill, value);
    return row;
  });
  $("image-result").replaceChildren(...rows);
}

async function imageCall(path, extra, render) {
  if (!state.image) {
    $("image-result").innerHTML = '<span class="error">choose an image first</span>';
    return;
  }
  $("image-result").textContent = "thinking...";
  try {
    render(await api(path, { model: $("image-model").value, image: state.image, ...extra }));
  } catch (e) {
    $("image-result").innerHTML = "";
    const err = document.createElement("span");
    err.className = "error";
    err.textContent = "error: " + e.message;
    $("image-result").appendChild(err);
  }
}

function caption() {
  imageCall("/v1/images/captions", {}, (r) => showAnswer(r.caption));
}

function askImage() {
  imageCall("/v1/images/answers", { question: $("vqa-question").value }, (r) => {
    showScores((r.answers || []).map((a) => ({ label: a.answer, score: a.score })));
    const head = document.createElement("div");
    head.className = "answer";
    head.textContent = r.answer;
    $("image-result").prepend(head);
  });
}

function classify() {
  const labels = $("zs-labels").value.split(",").map((s) => s.trim()).filter(Boolean);
  imageCall("/v1/images/zero-shot", { labels }, (r) => showScores(r.data));
}

// ----- search -----------------------------------------------------------------------------------
async function search(event) {
  event.preventDefault();
  const query = $("search-query").value.trim();
  if (!query) return;
  $("gallery").textContent = "searching...";
  try {
    const r = await api("/v1/images/search", {
      model: $("search-model").value, query, top_k: Number($("search-k").value),
    });
    const figures = r.data.map((hit) => {
      const fig = document.createElement("figure");
      const img = document.createElement("img");
      img.src = hit.thumbnail;
      img.alt = hit.file;
      const cap = document.createElement("figcaption");
      cap.textContent = hit.file + " · " + hit.score.toFixed(3);
      fig.append(img, cap);
      return fig;
    });
    $("gallery").replaceChildren(...figures);
    if (!figures.length) $("gallery").textContent = "no images";
  } catch (e) {
    $("gallery").innerHTML = "";
    const err = document.createElement("span");
    err.className = "error";
    err.textContent = "error: " + e.message;
    $("gallery").appendChild(err);
  }
}

// ----- wiring -----------------------------------------------------------------------------------
$("api-key").value = localStorage.getItem("lingvis-api-key") || "";
$("api-key").addEventListener("change", () => {
  localStorage.setItem("lingvis-api-key", $("api-key").value.trim());
  loadModels();
});
$("chat-form").addEventListener("submit", sendChat);
$("chat-input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) sendChat(e);
});
$("chat-stop").addEventListener("click", () => state.controller && state.controller.abort());
$("chat-model").addEventListener("change", showAttach);
$("chat-image").addEventListener("change", attachImage);
$("chat-reset").addEventListener("click", () => {
  state.history = [];
  $("chat-log").innerHTML = "";
  clearAttachment();
});
$("translate-model").addEventListener("change", showTargets);
$("translate-form").addEventListener("submit", translate);
$("translate-input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) translate(e);
});
$("image-model").addEventListener("change", showImageActions);
$("image-file").addEventListener("change", readImage);
$("caption-run").addEventListener("click", caption);
$("vqa-run").addEventListener("click", askImage);
$("zs-run").addEventListener("click", classify);
$("search-form").addEventListener("submit", search);
loadModels();
