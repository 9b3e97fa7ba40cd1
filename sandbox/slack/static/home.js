// The fake Slack's App Home page: opening it sends app_home_opened (through the fake,
// signed like Slack), then it renders the Home tab the app published with views.publish
// and re-renders on every change (server-sent events). No dependencies.
"use strict";

const params = new URLSearchParams(location.search);
const referrer = document.referrer ? new URL(document.referrer).searchParams.get("user") : null;
let USER = params.get("user") || referrer || localStorage.getItem("fakeslack.user") || "U0OPS001";
let STATE = null;

const EMOJI = {
  white_check_mark: "✅", warning: "⚠️", rotating_light: "🚨", x: "❌", sos: "🆘",
  chart_with_upwards_trend: "📈", chart_with_downwards_trend: "📉", large_green_circle: "🟢",
  red_circle: "🔴", large_yellow_circle: "🟡", hourglass_flowing_sand: "⏳", clipboard: "📋",
  bar_chart: "📊", link: "🔗", robot_face: "🤖", mag: "🔍", heavy_check_mark: "✔️",
};

const $ = (id) => document.getElementById(id);

function esc(s) {
  return String(s ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

function unesc(s) {
  return String(s ?? "").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function special(inner) {
  const bar = inner.indexOf("|");
  const target = bar < 0 ? inner : inner.slice(0, bar);
  const label = bar < 0 ? "" : inner.slice(bar + 1);
  if (target.startsWith("@")) {
    const u = STATE && STATE.users[target.slice(1)];
    return `<span class="mention">@${esc(u ? u.name : label || target.slice(1))}</span>`;
  }
  if (target.startsWith("#")) {
    const c = STATE && STATE.channels.find((x) => x.id === target.slice(1));
    return `<span class="mention">#${esc(c ? c.name : label || target.slice(1))}</span>`;
  }
  if (target.startsWith("!date^")) {
    const [, epoch] = target.split("^");
    const d = new Date(parseInt(epoch, 10) * 1000);
    return esc(isNaN(d.getTime()) ? label : d.toLocaleString());
  }
  if (target.startsWith("!")) return esc(label || target.slice(1));
  const url = unesc(target);
  if (/^(https?:|mailto:)/i.test(url)) {
    return `<a href="${esc(url)}" target="_blank" rel="noopener">${esc(unesc(label || target))}</a>`;
  }
  return esc(unesc(label || target));
}

function mrkdwn(src) {
  const held = [];
  const hold = (html) => `\u0000${held.push(html) - 1}\u0000`;
  let s = String(src ?? "");
  s = s.replace(/```([\s\S]*?)```/g, (_, code) => hold(`<pre class="pre">${esc(unesc(code))}</pre>`));
  s = s.replace(/`([^`\n]+)`/g, (_, code) => hold(`<code>${esc(unesc(code))}</code>`));
  s = s.replace(/<([^<>\n]+)>/g, (_, inner) => hold(special(inner)));
  s = esc(unesc(s));
  s = s.replace(/(^|[^\w*])\*(?=\S)([^*\n]*?\S)\*(?!\w)/g, "$1<b>$2</b>");
  s = s.replace(/(^|[^\w_])_(?=\S)([^_\n]*?\S)_(?!\w)/g, "$1<i>$2</i>");
  s = s.replace(/(^|[^\w~])~(?=\S)([^~\n]*?\S)~(?!\w)/g, "$1<s>$2</s>");
  s = s.replace(/:([a-z0-9_+\-]+):/g, (m, name) => EMOJI[name] || m);
  s = s.replace(/\n/g, "<br>");
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => held[Number(i)]);
}

function text(obj) {
  if (!obj) return "";
  if (obj.type === "mrkdwn") return obj.verbatim ? esc(obj.text) : mrkdwn(obj.text);
  return esc(obj.text);
}

function element(el) {
  if (el.type === "button") {
    const style = el.style === "primary" ? "primary" : el.style === "danger" ? "danger" : "";
    return el.url
      ? `<a class="btn ${style}" href="${esc(el.url)}" target="_blank" rel="noopener">${esc(el.text && el.text.text)}</a>`
      : `<button type="button" class="btn ${style}" disabled>${esc(el.text && el.text.text)}</button>`;
  }
  if (el.type === "image") return `<img class="el-image" src="${esc(el.image_url)}" alt="${esc(el.alt_text)}">`;
  return `<span class="muted">[${esc(el.type)}]</span>`;
}

function block(b) {
  switch (b.type) {
    case "header":
      return `<div class="b-header">${esc(b.text && b.text.text)}</div>`;
    case "section": {
      const fields = b.fields
        ? `<div class="b-fields">${b.fields.map((f) => `<div class="b-field">${text(f)}</div>`).join("")}</div>` : "";
      const acc = b.accessory ? `<div class="b-accessory">${element(b.accessory)}</div>` : "";
      return `<div class="b-section"><div class="b-section-body">${b.text ? `<div class="b-text">${text(b.text)}</div>` : ""}${fields}</div>${acc}</div>`;
    }
    case "context":
      return `<div class="b-context">${(b.elements || []).map((e) => e.type === "image"
        ? `<img class="ctx-image" src="${esc(e.image_url)}" alt="${esc(e.alt_text)}">` : `<span>${text(e)}</span>`).join("")}</div>`;
    case "divider":
      return `<hr class="b-divider">`;
    case "actions":
      return `<div class="b-actions">${(b.elements || []).map(element).join("")}</div>`;
    case "image": {
      const src = b.ui_url || b.image_url || "";
      return `<figure class="b-image">${b.title ? `<figcaption>${esc(b.title.text)}</figcaption>` : ""}<img src="${esc(src)}" alt="${esc(b.alt_text)}"></figure>`;
    }
    default:
      return `<div class="muted">[${esc(b.type)} block]</div>`;
  }
}

function render() {
  $("channels").innerHTML = STATE.channels.map((c) =>
    `<li class="sidebar-item"><a href="/channel/${esc(c.id)}?user=${esc(USER)}"><span class="hash">#</span> ${esc(c.name)}</a></li>`).join("");
  const picker = $("user-picker");
  const humans = Object.values(STATE.users).filter((u) => !u.is_bot);
  const html = humans.map((u) => `<option value="${esc(u.id)}" ${u.id === USER ? "selected" : ""}>${esc(u.real_name)} · ${esc(u.id)}</option>`).join("");
  if (picker.dataset.html !== html) {
    picker.innerHTML = html;
    picker.dataset.html = html;
  }
  const home = $("home");
  if (STATE.view) {
    home.innerHTML = STATE.view.blocks.map(block).join("");
    return;
  }
  const last = STATE.last_event;
  const why = !STATE.enabled ? "The app's Home tab is turned off."
    : last && last.error ? `The app did not answer app_home_opened (${esc(last.error)}).`
    : "Waiting for driftwatch to publish its Home tab…";
  home.innerHTML = `<div class="home-note">${why}</div>`;
}

async function load() {
  const r = await fetch(`/_ui/home/state?user=${encodeURIComponent(USER)}`);
  if (!r.ok) return;
  STATE = await r.json();
  render();
}

async function openHome() {
  await fetch("/_ui/home/open", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: USER }),
  });
  await load();
}

function connect() {
  const live = $("live");
  const source = new EventSource("/_ui/events");
  source.addEventListener("change", () => load());
  source.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  source.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
}

$("user-picker").addEventListener("change", (e) => {
  USER = e.target.value;
  localStorage.setItem("fakeslack.user", USER);
  const url = new URL(location.href);
  url.searchParams.set("user", USER);
  history.replaceState(null, "", url);
  openHome();
});

load().then(openHome).then(connect);
