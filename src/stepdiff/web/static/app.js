// StepDiff coach: pick clips, compare, chart the differences, chat about the pair.
// Plain DOM code, no framework and nothing loaded from elsewhere. Text from the server
// is always set with textContent, never parsed as HTML.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const state = {
  info: null,       // /api/info: upload limit, categories, examples
  slots: [],        // {role, element, clip}: the reference first, then candidates
  pair: null,       // the {reference, candidate} clip specs shown in the results
  report: null,     // the latest /api/report answer
  category: null,   // the category whose moments are marked
};

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attributes = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

// --- talking to the server ---------------------------------------------------------------

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body),
  };
  return answer(await fetch(path, options));
}

async function answer(response) {
  let data = null;
  try { data = await response.json(); } catch { /* not JSON: reported below */ }
  if (!response.ok) {
    throw new Error((data && data.error) || `the server answered ${response.status}`);
  }
  return data;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

async function busy(task) {
  // One request at a time from this page: the model serves requests in turn anyway.
  for (const button of document.querySelectorAll("#compare, #ask-button, .chip")) {
    button.disabled = true;
  }
  $("#busy").hidden = false;
  showError("");
  try {
    return await task();
  } catch (error) {
    showError(error.message);
  } finally {
    for (const button of document.querySelectorAll("#compare, #ask-button, .chip")) {
      button.disabled = false;
    }
    $("#busy").hidden = true;
  }
}

// --- clip slots ----------------------------------------------------------------------------

function addSlot(role) {
  const element = $("#slot-template").content.firstElementChild.cloneNode(true);
  const slot = {role, element, clip: null};
  element.dataset.role = role;
  const select = $(".example", element);
  for (const clip of state.info.examples) {
    select.append(el("option", {value: clip.id, textContent: `${clip.name} (${clip.duration} s)`}));
  }
  select.addEventListener("change", () => {
    const clip = state.info.examples.find((c) => c.id === select.value);
    if (clip) { $(".file", element).value = ""; setClip(slot, clip); }
  });
  $(".file", element).addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) { select.value = ""; upload(slot, file); }
  });
  $(".remove", element).addEventListener("click", () => {
    state.slots = state.slots.filter((s) => s !== slot);
    element.remove();
    relabel();
  });
  state.slots.push(slot);
  $("#slots").append(element);
  relabel();
}

function relabel() {
  // Labels, and remove buttons only while more than one candidate is left.
  const several = state.slots.length > 2;
  let number = 0;
  for (const slot of state.slots) {
    $("legend", slot.element).textContent =
      slot.role === "reference" ? "Reference" : several ? `Candidate ${++number}` : "Candidate (you)";
    $(".remove", slot.element).hidden = slot.role === "reference" || !several;
  }
  $("#add-candidate").disabled = state.slots.length > state.info.max_candidates;
}

function setClip(slot, clip) {
  slot.clip = clip;
  const name = $(".clip-name", slot.element);
  name.textContent = `${clip.name}: ${clip.duration} s, ${clip.width}x${clip.height}`;
  name.classList.add("ready");
  for (const input of [$(".start", slot.element), $(".end", slot.element)]) {
    input.value = "";
    input.max = clip.duration;
  }
  $(".end", slot.element).placeholder = clip.duration;
}

function uploadLimitMB() {
  return Number((state.info.max_upload_bytes / 2 ** 20).toPrecision(6));  // as the server writes it
}

async function upload(slot, file) {
  const name = $(".clip-name", slot.element);
  slot.clip = null;
  name.classList.remove("ready");
  if (file.size > state.info.max_upload_bytes) {
    // Refuse before sending: a browser may not show an answer that arrives mid-upload.
    name.textContent = "no clip yet";
    showError(`${file.name} is larger than the upload limit of ${uploadLimitMB()} MB`);
    return;
  }
  name.textContent = `uploading ${file.name}...`;
  showError("");
  try {
    const url = `/api/upload?name=${encodeURIComponent(file.name)}`;
    // The server takes only video/* or octet-stream bodies (a browser lets other sites
    // send text/plain and form bodies unasked); a file of unknown type has none of its own.
    const type = file.type.startsWith("video/") ? file.type : "application/octet-stream";
    const options = {method: "POST", headers: {"Content-Type": type}, body: file};
    setClip(slot, await answer(await fetch(url, options)));
  } catch (error) {
    name.textContent = "no clip yet";
    $(".file", slot.element).value = "";
    showError(error.message);
  }
}

function spec(slot) {
  const number = (input) => (input.value === "" ? null : Number(input.value));
  return {id: slot.clip.id, start: number($(".start", slot.element)), end: number($(".end", slot.element))};
}

// --- comparing -----------------------------------------------------------------------------

async function compare() {
  const [reference, ...candidates] = state.slots;
  const missing = state.slots.find((slot) => !slot.clip);
  if (missing) {
    showError(`choose a clip for the ${$("legend", missing.element).textContent.toLowerCase()}`);
    return;
  }
  await busy(async () => {
    let names = [];
    let chosen = 0;
    if (candidates.length > 1) {
      const ranked = await api("/api/rank", {reference: spec(reference), candidates: candidates.map(spec)});
      names = ranked.names;
      chosen = ranked.rank.overall[0];
      drawRanking(ranked, reference, candidates);
    } else {
      $("#ranking").hidden = true;
    }
    await showPair(spec(reference), spec(candidates[chosen]), names[chosen]);
  });
}

async function showPair(reference, candidate, name) {
  const data = await api("/api/report", {reference, candidate});
  state.pair = {reference, candidate};
  state.report = data;
  $("#pair-title").textContent = `${data.reference.clip.name} vs. ${name || data.candidate.clip.name}`;
  $("#messages").replaceChildren();
  const categories = data.report.categories;
  const worst = categories.reduce((a, b) => (b.severity > a.severity ? b : a), categories[0]);
  state.category = worst ? worst.category : null;
  drawStrip("reference", data.reference.frames);
  drawStrip("candidate", data.candidate.frames);
  drawChart(categories);
  drawCaptions(categories);
  const report = data.report;
  $("#calibration").textContent = [
    report.calibrated
      ? "Severities are calibrated against annotated similarity scores."
      : "Severities are uncalibrated: read them as a relative order, not as absolute grades.",
    report.projector_trained === false
      ? "This model's projector is untrained: its answers do not reflect the videos." : "",
  ].join(" ");
  markMoments();
  $("#results").hidden = false;
}

function drawRanking(ranked, reference, candidates) {
  const categories = Object.keys(ranked.rank.per_category);
  const positions = {};  // category -> candidate index -> place (1 = closest)
  for (const category of categories) {
    positions[category] = {};
    ranked.rank.per_category[category].forEach((index, place) => { positions[category][index] = place + 1; });
  }
  const head = el("tr", {}, [el("th", {textContent: "#"}), el("th", {textContent: "Candidate"}),
    el("th", {textContent: "P(same), overall"}), ...categories.map((c) => el("th", {textContent: c}))]);
  const rows = ranked.rank.overall.map((index, place) => {
    const scores = ranked.rank.candidates[index];
    const row = el("tr", {}, [
      el("td", {textContent: place + 1}),
      el("td", {textContent: ranked.names[index]}),
      el("td", {textContent: scores.overall.toFixed(2)}),
      ...categories.map((c) => el("td", {
        textContent: `${positions[c][index]} (${scores.p_same[c].toFixed(2)})`,
        title: `place ${positions[c][index]} for ${c}; P(same) ${scores.p_same[c].toFixed(3)}`,
      })),
    ]);
    row.dataset.index = index;
    row.addEventListener("click", () => {
      for (const other of row.parentNode.children) other.classList.toggle("selected", other === row);
      busy(() => showPair(spec(reference), spec(candidates[index]), ranked.names[index]));
    });
    return row;
  });
  rows[0].classList.add("selected");
  $("#rank-table").replaceChildren(el("thead", {}, [head]), el("tbody", {}, rows));
  $("#ranking").hidden = false;
}

function drawStrip(role, frames) {
  $(`#strip-${role}`).replaceChildren(...frames.map((frame, index) => {
    const figure = el("figure", {className: "frame"}, [
      el("img", {src: frame.url, alt: `${role} frame at ${frame.time} s`}),
      el("figcaption", {textContent: `${frame.time.toFixed(2)} s`}),
    ]);
    figure.dataset.index = index;
    return figure;
  }));
}

const SEVERITY_COLORS = ["#2f9e44", "#94c11f", "#f2c200", "#f08c00", "#e03131"];

function drawChart(categories) {
  const labelWidth = 170, barWidth = 360, rowHeight = 30, top = 18;
  const chart = $("#chart");
  chart.setAttribute("viewBox", `0 0 ${labelWidth + barWidth + 40} ${top + rowHeight * categories.length}`);
  const parts = [];
  for (let level = 1; level <= 5; level++) {  // grid lines and the 1..5 scale
    const x = labelWidth + (barWidth * level) / 5;
    parts.push(svg("line", {x1: x, x2: x, y1: top - 4, y2: top + rowHeight * categories.length, class: "grid"}));
    const tick = svg("text", {x, y: 12, "text-anchor": "middle"});
    tick.textContent = level;
    parts.push(tick);
  }
  categories.forEach((item, i) => {
    const y = top + i * rowHeight;
    const row = svg("g", {class: "row", "data-category": item.category});
    const label = svg("text", {x: 0, y: y + 19, class: "label"});
    label.textContent = item.category;
    const bar = svg("rect", {x: labelWidth, y: y + 5, height: rowHeight - 10, rx: 3,
      width: (barWidth * item.severity) / 5, fill: SEVERITY_COLORS[item.severity - 1], class: "bar"});
    const title = svg("title");
    title.textContent = `${item.category}: severity ${item.severity}/5, P(same) ${item.p_same.toFixed(2)}`;
    const value = svg("text", {x: labelWidth + (barWidth * item.severity) / 5 + 6, y: y + 19, class: "value"});
    value.textContent = item.severity;
    row.append(title, label, bar, value);
    row.addEventListener("click", () => selectCategory(item.category));
    parts.push(row);
  });
  chart.replaceChildren(...parts);
}

function drawCaptions(categories) {
  $("#captions").replaceChildren(...categories.flatMap((item) => {
    const term = el("dt", {textContent: `${item.category} (severity ${item.severity})`});
    term.dataset.category = item.category;
    term.addEventListener("click", () => selectCategory(item.category));
    return [term, el("dd", {textContent: item.caption || "(no caption)"})];
  }));
}

function selectCategory(category) {
  state.category = category;
  markMoments();
}

function markMoments() {
  const item = state.report.report.categories.find((c) => c.category === state.category);
  const moments = item ? item.moments : [];
  for (const row of document.querySelectorAll("#chart .row")) {
    row.classList.toggle("selected", row.dataset.category === state.category);
  }
  for (const role of ["reference", "candidate"]) {
    for (const figure of document.querySelectorAll(`#strip-${role} .frame`)) {
      const numbers = moments
        .map((moment, k) => (moment[`${role}_frame`] === Number(figure.dataset.index) ? k + 1 : null))
        .filter((k) => k !== null);
      figure.classList.toggle("marked", numbers.length > 0);
      figure.querySelector(".badge")?.remove();
      if (numbers.length) figure.prepend(el("span", {className: "badge", textContent: numbers.join(",")}));
    }
  }
  $("#moments").replaceChildren(...moments.map((m) => el("li", {
    textContent: `reference at ${m.reference_time.toFixed(2)} s vs. candidate at ` +
      `${m.candidate_time.toFixed(2)} s (frame feature distance ${m.distance.toFixed(2)})`,
  })));
}

// --- chat ------------------------------------------------------------------------------------

async function ask(question) {
  question = question.trim();
  if (!question || !state.pair) return;
  const messages = $("#messages");
  messages.append(el("div", {className: "msg user", textContent: question}));
  const reply = el("div", {className: "msg bot pending", textContent: "..."});
  messages.append(reply);
  messages.scrollTop = messages.scrollHeight;
  $("#question").value = "";
  await busy(async () => {
    try {
      const data = await api("/api/ask", {...state.pair, question});
      reply.textContent = data.answer || "(empty answer)";
    } catch (error) {
      reply.textContent = error.message;
      reply.classList.add("failed");
    } finally {
      reply.classList.remove("pending");
      messages.scrollTop = messages.scrollHeight;
    }
  });
}

// --- start ---------------------------------------------------------------------------------

async function start() {
  try {
    state.info = await api("/api/info");
  } catch (error) {
    showError(`cannot reach the server: ${error.message}`);
    return;
  }
  $("#limits").textContent = `Videos up to ${uploadLimitMB()} MB; trim a clip with from/to (seconds).`;
  addSlot("reference");
  addSlot("candidate");
  $("#add-candidate").addEventListener("click", () => addSlot("candidate"));
  $("#compare").addEventListener("click", compare);
  $("#ask-form").addEventListener("submit", (event) => { event.preventDefault(); ask($("#question").value); });
  for (const chip of document.querySelectorAll(".chip")) {
    chip.addEventListener("click", () => ask(chip.textContent));
  }
  document.body.dataset.ready = "true";  // for tests: the page has wired its handlers
}

start();
