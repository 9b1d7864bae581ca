"""The review page at ``/``: one server-rendered HTML file with a little JavaScript, no build step.

A person pastes a key, uploads a photo (or picks a job) and sees the original and the anonymised image side by side
with each face's box, verdict, fallback reason and attributes before and after, the analytics plots of a video job,
and a download. The original of an upload is shown from the browser's own copy of the file (an object URL): the
server never sends it back and never stores it. Originals of server-side path jobs are shown to reviewer keys only.
Everything from the server is put on the page as text (``textContent``), never as markup.
"""

from __future__ import annotations

from .. import __version__

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>condanon review</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
fieldset { border: 1px solid #ccc; margin: 0.5em 0; padding: 0.6em; }
.pair { display: flex; gap: 1em; flex-wrap: wrap; align-items: flex-start; }
.view { position: relative; display: inline-block; max-width: 48%; }
.view img, .view video { max-width: 100%; display: block; }
.view svg { position: absolute; left: 0; top: 0; width: 100%; height: 100%; pointer-events: none; }
.view .label { font-weight: 600; margin-bottom: 0.2em; }
table { border-collapse: collapse; margin-top: 0.6em; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
.fallback { color: #a00; } .anonymized { color: #060; }
#status, .status { margin: 0.5em 0; min-height: 1.2em; }
.error { color: #a00; }
.plots img { max-width: 32%; margin: 0.2em; border: 1px solid #ddd; }
</style>
</head>
<body>
<h1>condanon review <small>__VERSION__</small></h1>
<fieldset>
<label>API key <input id="key" type="password" size="40" autocomplete="off"></label>
<span>(kept in this tab only)</span>
</fieldset>

<h2>One photo</h2>
<form id="photo-form">
<input id="photo" type="file" accept="image/*" required>
<select id="method"><option value="">default method</option><option>synthetic</option><option>blur</option>
<option>pixelate</option><option>mask</option></select>
<button id="send" type="submit">Anonymise</button>
</form>
<div id="status"></div>
<div id="photo-result"></div>

<h2>Jobs (videos and folders)</h2>
<form id="job-form">
<input id="job-files" type="file" multiple>
<label><input id="job-analytics" type="checkbox"> passenger analytics (videos)</label>
<button type="submit">Start a job</button>
<button id="refresh" type="button">Refresh the list</button>
</form>
<div id="job-status" class="status"></div>
<table id="jobs"><thead><tr><th>job</th><th>status</th><th>progress</th><th>inputs</th><th></th></tr></thead>
<tbody></tbody></table>
<div id="job-result"></div>

<script>
"use strict";
const $ = (id) => document.getElementById(id);
const keyField = $("key");
keyField.value = sessionStorage.getItem("condanon-key") || "";
keyField.addEventListener("change", () => sessionStorage.setItem("condanon-key", keyField.value));
const uploaded = new Map();  // this tab's own copies of the files its jobs uploaded: "job id/input name" -> object URL

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {}, {"Authorization": "Bearer " + keyField.value});
  const answer = await fetch(path, Object.assign({}, options, {headers}));
  if (!answer.ok) {
    let message = answer.status + " " + answer.statusText;
    try { message = (await answer.json()).error || message; } catch (e) {}
    throw new Error(message);
  }
  return answer;
}

async function blobUrl(path) {
  return URL.createObjectURL(await (await api(path)).blob());
}

function attributes(a) {
  if (!a) return "-";
  const age = a.age === null || a.age === undefined ? "?" : Math.round(a.age);
  return age + " y, " + (a.sex || "?") + ", " + (a.emotion || "?");
}

function boxes(view, faces, width, height) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 " + width + " " + height);
  svg.setAttribute("preserveAspectRatio", "none");
  faces.forEach((face, i) => {
    const [x1, y1, x2, y2] = face.box;
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    rect.setAttribute("x", x1); rect.setAttribute("y", y1);
    rect.setAttribute("width", x2 - x1); rect.setAttribute("height", y2 - y1);
    rect.setAttribute("fill", "none");
    rect.setAttribute("stroke", face.verdict === "fallback" ? "#e00" : "#0c0");
    rect.setAttribute("stroke-width", Math.max(2, width / 400));
    svg.appendChild(rect);
    const label = document.createElementNS("http://www.w3.org/2000/svg", "text");
    label.setAttribute("x", x1); label.setAttribute("y", Math.max(12, y1 - 3));
    label.setAttribute("fill", "#ff0"); label.setAttribute("font-size", Math.max(12, width / 60));
    label.textContent = String(i);
    svg.appendChild(label);
  });
  view.appendChild(svg);
}

function view(title, url, faces, width, height, isVideo) {
  const box = el("div", undefined, "view");
  box.appendChild(el("div", title, "label"));
  const media = document.createElement(isVideo ? "video" : "img");
  if (isVideo) media.controls = true;
  media.src = url;
  media.alt = title;
  box.appendChild(media);
  if (faces && width && !isVideo) boxes(box, faces, width, height);
  return box;
}

function faceTable(faces) {
  const table = el("table", undefined, "faces");
  const head = table.createTHead().insertRow();
  ["face", "box", "verdict", "fallback reason", "before (age, sex, emotion)", "after"].forEach(
    (name) => head.appendChild(el("th", name)));
  const body = table.createTBody();
  faces.forEach((face, i) => {
    const row = body.insertRow();
    row.appendChild(el("td", face.frame === undefined ? i : i + " (frame " + face.frame + ")"));
    row.appendChild(el("td", face.box.join(", ")));
    row.appendChild(el("td", face.verdict, face.verdict));
    row.appendChild(el("td", face.reason || "-"));
    row.appendChild(el("td", attributes(face.attributes_before)));
    row.appendChild(el("td", attributes(face.attributes_after)));
  });
  return table;
}

function download(url, name) {
  const link = el("a", "Download " + name);
  link.href = url; link.download = name;
  return link;
}

$("photo-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("photo").files[0];
  if (!file) return;
  const status = $("status"), out = $("photo-result");
  status.className = ""; status.textContent = "anonymising " + file.name + " ...";
  out.replaceChildren();
  const form = new FormData();
  form.append("file", file);
  if ($("method").value) form.append("method", $("method").value);
  form.append("report", "true");
  try {
    const answer = await (await api("/v1/anonymize", {method: "POST", body: form})).json();
    const report = answer.report;
    const bytes = Uint8Array.from(atob(answer.image.base64), (c) => c.charCodeAt(0));
    const anonymised = URL.createObjectURL(new Blob([bytes], {type: answer.image.media_type}));
    const original = URL.createObjectURL(file);
    const pair = el("div", undefined, "pair");
    pair.appendChild(view("original (this browser's copy)", original, report.faces, report.width, report.height));
    pair.appendChild(view("anonymised", anonymised, report.faces, report.width, report.height));
    out.appendChild(pair);
    out.appendChild(faceTable(report.faces));
    out.appendChild(download(anonymised, "anonymised-" + file.name));
    status.textContent = report.faces.length + " face(s); " +
      report.faces.filter((f) => f.verdict === "fallback").length + " fell back to the mask";
  } catch (error) {
    status.className = "error"; status.textContent = error.message;
  }
});

$("job-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const files = [...$("job-files").files];
  if (!files.length) return;
  const form = new FormData();
  for (const file of files) form.append("file", file);
  if ($("job-analytics").checked) form.append("analytics", "true");
  try {
    const job = await (await api("/v1/jobs", {method: "POST", body: form})).json();
    // keyed by job: another upload may reuse a name; the server may rename (x-2.jpg), its inputs keep our order
    files.forEach((file, i) => uploaded.set(job.id + "/" + (job.inputs[i] || file.name), URL.createObjectURL(file)));
    $("job-status").className = "status"; $("job-status").textContent = "job " + job.id + " queued";
    listJobs();
  } catch (error) {
    $("job-status").className = "status error"; $("job-status").textContent = error.message;
  }
});

async function listJobs() {
  try {
    const data = await (await api("/v1/jobs")).json();
    const body = $("jobs").tBodies[0];
    body.replaceChildren();
    data.jobs.forEach((job) => {
      const row = body.insertRow();
      row.appendChild(el("td", job.id));
      row.appendChild(el("td", job.status));
      row.appendChild(el("td", Math.round(100 * job.progress.fraction) + " %"));
      row.appendChild(el("td", job.inputs.join(", ")));
      const cell = el("td");
      const show = el("button", "show");
      show.type = "button";
      show.addEventListener("click", () => showJob(job.id));
      cell.appendChild(show);
      row.appendChild(cell);
    });
  } catch (error) {
    $("job-status").className = "status error"; $("job-status").textContent = error.message;
  }
}
$("refresh").addEventListener("click", listJobs);

async function showJob(id) {
  const out = $("job-result");
  out.replaceChildren(el("div", "loading job " + id + " ..."));
  try {
    const job = await (await api("/v1/jobs/" + id)).json();
    out.replaceChildren(el("h3", "job " + id + ": " + job.status));
    if (job.status !== "done") { if (job.error) out.appendChild(el("div", job.error, "error")); return; }
    const files = (await (await api("/v1/jobs/" + id + "/files")).json()).files;
    const report = await (await api("/v1/jobs/" + id + "/files/report.json")).json();
    for (const result of report.results || []) {
      const card = el("div");
      const source = String(result.source || "");  // the input's name within the job (or under the root)
      card.appendChild(el("h4", source || "input"));
      if (result.error) { card.appendChild(el("div", result.error, "error")); out.appendChild(card); continue; }
      const output = String(result.output || "");  // relative to the job's result: out/<name>
      if (!files.includes(output)) continue;
      const isVideo = Array.isArray(result.tracks);
      const pair = el("div", undefined, "pair");
      let original = uploaded.get(id + "/" + source);
      if (!original && job.source === "path") {
        try {  // reviewer keys only; the server refuses the others
          original = await blobUrl("/v1/jobs/" + id + "/originals/" + encodeURI(String(result.source)));
        } catch (e) { original = undefined; }
      }
      if (original) pair.appendChild(view("original", original, result.faces, result.width, result.height, isVideo));
      const anonymised = await blobUrl("/v1/jobs/" + id + "/files/" + output);
      pair.appendChild(view("anonymised", anonymised, result.faces, result.width, result.height, isVideo));
      card.appendChild(pair);
      if (isVideo) card.appendChild(el("div", result.tracks.length + " tracks"));
      else card.appendChild(faceTable(result.faces || []));
      out.appendChild(card);
    }
    const plots = files.filter((name) => name.startsWith("analytics/") && name.endsWith(".png"));
    if (plots.length) {
      out.appendChild(el("h4", "passenger analytics"));
      const box = el("div", undefined, "plots");
      for (const name of plots) {
        const img = document.createElement("img");
        img.src = await blobUrl("/v1/jobs/" + id + "/files/" + name); img.alt = name;
        box.appendChild(img);
      }
      out.appendChild(box);
    }
    const zip = await blobUrl("/v1/jobs/" + id + "/result");
    out.appendChild(download(zip, "condanon-" + id + ".zip"));
  } catch (error) {
    out.replaceChildren(el("div", error.message, "error"));
  }
}
</script>
</body>
</html>
"""


def review_page() -> str:
    """Return the review page's HTML."""
    return _PAGE.replace("__VERSION__", __version__)
