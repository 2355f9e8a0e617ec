// lingvis web page, knowledge-graph panel: entity search and entity pages (image crops, source sentences with
// the mention highlighted, triples with provenance, links between entities). Entity pages live at #kg/<id>.
// Uses $, headers() and errorText() from app.js.
"use strict";

const kg = { summary: null, cropUrls: [] };

async function kgGet(path) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) {
    const err = new Error(await errorText(response));
    err.status = response.status;
    throw err;
  }
  return response;
}

const kgJSON = async (path) => (await kgGet(path)).json();

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function kgError(target, e) {
  target.replaceChildren(el("span", "error: " + e.message, "error"));
}

function entityHref(id) {
  return "#kg/" + encodeURIComponent(id);
}

// A link to an entity page (or bold text for the entity being shown).
function entityLink(id, label, current) {
  if (id === current) return el("span", id, "self");
  const a = el("a", id);
  a.href = entityHref(id);
  a.className = "kg-link";
  if (label) a.title = label;
  return a;
}

async function loadKG() {
  const panel = $("kg-panel");
  try {
    kg.summary = await kgJSON("/v1/kg/summary");
  } catch (e) {
    panel.classList.add("off");
    panel.querySelector(".hint").hidden = e.status !== 404;
    if (e.status !== 404) kgError($("kg-summary"), e);
    return;
  }
  panel.classList.remove("off");
  panel.querySelector(".hint").hidden = true;
  const s = kg.summary;
  $("kg-summary").textContent = `${s.entities} entities · ${s.images} images · ${s.captions} captions · ` +
    `${s.statements} statements` + (s.crops ? "" : " · no image folder served (crops off)");
  await searchKG();
  showFromHash();
}

async function searchKG(event) {
  if (event) event.preventDefault();
  const q = $("kg-query").value.trim();
  try {
    const r = await kgJSON("/v1/kg/entities?limit=100&q=" + encodeURIComponent(q));
    const items = r.data.map((e) => {
      const li = el("li");
      li.append(entityLink(e.id, e.label), " ", el("span", [e.type, e.label].filter(Boolean).join(": "), "type"));
      return li;
    });
    $("kg-results").replaceChildren(...items);
    if (!items.length) $("kg-results").replaceChildren(el("li", "no entity matches " + JSON.stringify(q)));
  } catch (e) {
    kgError($("kg-results"), e);
  }
}

function showFromHash() {
  if (!location.hash.startsWith("#kg/")) return;
  showEntity(decodeURIComponent(location.hash.slice(4)));
}

function facts(page) {
  const rows = [["type", page.types.filter((t) => t !== "Entity" && t !== "Shape").join(", ") || page.type]];
  if (page.labels.length) rows.push(["label", page.labels.join(" · ")]);
  for (const [name, values] of Object.entries(page.attributes)) rows.push([name, values.join(", ")]);
  if (page.scene) rows.push(["scene", page.scene]);
  return rows.flatMap(([k, v]) => [el("dt", k), el("dd", v)]);
}

// The caption text with the mention's [start, end) characters in a <mark>.
function sentence(s) {
  const li = el("li");
  const text = s.text;
  if (s.span && s.span[0] >= 0 && s.span[1] <= text.length && s.span[0] < s.span[1]) {
    li.append(text.slice(0, s.span[0]), el("mark", text.slice(s.span[0], s.span[1])), text.slice(s.span[1]));
  } else {
    li.append(text);
  }
  li.append(" ", el("span", `${s.source} · link score ${s.score.toFixed(2)} · ${s.model}`, "kg-prov"));
  return li;
}

function crop(image) {
  const fig = el("figure");
  fig.dataset.mention = image.mention;
  const caption = el("figcaption", `${image.source} · ${image.score.toFixed(2)}`);
  if (kg.summary && kg.summary.crops) {
    const img = el("img");
    img.alt = "crop of " + image.source + " at " + image.box.map((v) => v.toFixed(2)).join(" ");
    fig.append(img);
    kgGet("/v1/kg/crops/" + image.mention)
      .then((r) => r.blob())
      .then((blob) => {
        const url = URL.createObjectURL(blob);
        kg.cropUrls.push(url);
        img.src = url;
      })
      .catch((e) => fig.replaceChildren(el("span", e.message, "error"), caption));
  }
  fig.append(caption);
  return fig;
}

function where(p) {
  const bits = [p.source, p.model, p.confidence.toFixed(2)];
  if (p.span) bits.push(`chars ${p.span[0]}-${p.span[1]}`);
  if (p.box) bits.push("box " + p.box.map((v) => v.toFixed(2)).join(" "));
  return bits.join(" · ");
}

function tripleRow(t, page) {
  const tr = el("tr");
  const obj = t.literal ? el("span", t.object) : entityLink(t.object, (page.entities[t.object] || {}).label, page.id);
  const prov = el("td");
  for (const p of t.provenance) prov.append(el("div", where(p), "kg-prov"));
  const cells = [entityLink(t.subject, (page.entities[t.subject] || {}).label, page.id), el("span", t.predicate), obj,
    el("span", t.confidence.toFixed(2))];
  tr.append(...cells.map((c) => { const td = el("td"); td.append(c); return td; }), prov);
  return tr;
}

async function showEntity(id) {
  const box = $("kg-entity");
  box.hidden = false;
  $("kg-entity-title").textContent = id;
  try {
    const page = await kgJSON("/v1/kg/entities/" + encodeURIComponent(id));
    for (const url of kg.cropUrls.splice(0)) URL.revokeObjectURL(url);
    $("kg-entity-title").replaceChildren(page.id, " ", el("span", page.type, "kg-type"));
    $("kg-entity-facts").replaceChildren(...facts(page));
    $("kg-crops").replaceChildren(...page.images.map(crop));
    if (!page.images.length) $("kg-crops").replaceChildren(el("span", "no image mentions", "kg-prov"));
    $("kg-sentences").replaceChildren(...page.sentences.map(sentence));
    if (!page.sentences.length) $("kg-sentences").replaceChildren(el("li", "no caption mentions", "kg-prov"));
    $("kg-triples").tBodies[0].replaceChildren(...page.triples.map((t) => tripleRow(t, page)));
    box.dataset.entity = page.id;
  } catch (e) {
    box.dataset.entity = "";
    $("kg-entity-facts").replaceChildren();
    $("kg-crops").replaceChildren();
    $("kg-sentences").replaceChildren();
    $("kg-triples").tBodies[0].replaceChildren();
    kgError($("kg-entity-facts"), e);
  }
}

$("kg-search-form").addEventListener("submit", searchKG);
$("api-key").addEventListener("change", loadKG);
window.addEventListener("hashchange", showFromHash);
loadKG();
