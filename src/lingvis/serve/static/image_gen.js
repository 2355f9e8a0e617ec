// lingvis web page: the text-to-image panel. POST /v1/images/generations (OpenAI's images API plus the seed,
// steps and guidance_scale extensions); the images come back as base64 PNGs. Uses app.js's helpers ($, api,
// fillSelect, hasCap), which run first (this script is deferred).
"use strict";

(() => {
  let models = [];

  const current = () => models.find((m) => m.id === $("gen-model").value);

  // The sizes and the image limit of the chosen model (from /v1/models).
  function showSizes() {
    const model = current();
    const select = $("gen-size");
    select.innerHTML = "";
    for (const size of (model && model.sizes) || []) {
      const opt = document.createElement("option");
      opt.value = opt.textContent = size;
      select.appendChild(opt);
    }
    if (model && model.max_images) $("gen-n").max = model.max_images;
    if (model && model.max_steps) $("gen-steps").max = model.max_steps;
  }

  async function loadGenModels() {
    try {
      models = (await api("/v1/models")).data.filter(hasCap("image_generation"));
    } catch (e) {
      models = [];  // app.js reports an unreachable server
    }
    fillSelect($("gen-model"), models);
    showSizes();
  }

  function showError(text) {
    const err = document.createElement("span");
    err.className = "error";
    err.textContent = text;
    $("gen-gallery").replaceChildren(err);
  }

  async function generate(event) {
    event.preventDefault();
    const prompt = $("gen-prompt").value.trim();
    if (!prompt) {
      showError("write a prompt first");
      return;
    }
    const body = {
      model: $("gen-model").value, prompt, n: Number($("gen-n").value), size: $("gen-size").value || undefined,
      response_format: "b64_json", steps: Number($("gen-steps").value),
      guidance_scale: Number($("gen-guidance").value),
    };
    const seed = $("gen-seed").value.trim();
    if (seed !== "") body.seed = Number(seed);
    $("gen-run").disabled = true;
    $("gen-gallery").textContent = "generating...";
    try {
      const r = await api("/v1/images/generations", body);
      const figures = r.data.map((item, i) => {
        const fig = document.createElement("figure");
        const img = document.createElement("img");
        img.src = "data:image/png;base64," + item.b64_json;
        img.alt = prompt + " (" + (i + 1) + ")";
        const cap = document.createElement("figcaption");
        cap.textContent = "seed " + r.seed + " · " + (i + 1) + "/" + r.data.length;
        fig.append(img, cap);
        return fig;
      });
      $("gen-gallery").replaceChildren(...figures);
    } catch (e) {
      showError("error: " + e.message);
    } finally {
      $("gen-run").disabled = false;
    }
  }

  $("gen-model").addEventListener("change", showSizes);
  $("gen-form").addEventListener("submit", generate);
  $("api-key").addEventListener("change", loadGenModels);
  loadGenModels();
})();
