// The fake Slack's channel page: renders /_ui/state, listens to /_ui/events (SSE) and
// sends a person's clicks, commands and modal submissions to the fake's /_ui/* endpoints
// (the fake, not this page, signs and sends them to the app). No dependencies.
"use strict";

const CHANNEL = decodeURIComponent(location.pathname.split("/")[2] || "");
const params = new URLSearchParams(location.search);
let USER = params.get("user") || localStorage.getItem("fakeslack.user") || "U0OPS001";

let STATE = null;
const ELEMENTS = new Map(); // interactive elements by id (data-el)
let elementSeq = 0;
let lastListKey = "";
let lastThreadKey = "";
let openThread = null;      // ts of the thread shown in the pane
let modalKey = "";          // view id + hash currently rendered
const dismissed = new Set(); // ephemerals the viewer dismissed
const notes = [];           // local notes (e.g. a command that failed), like Slackbot's

const EMOJI = {
  white_check_mark: "✅", heavy_check_mark: "✔️", warning: "⚠️", rotating_light: "🚨",
  x: "❌", package: "📦", chart_with_upwards_trend: "📈", chart_with_downwards_trend: "📉",
  hourglass: "⌛", hourglass_flowing_sand: "⏳", bell: "🔔", mag: "🔍", wrench: "🔧",
  large_green_circle: "🟢", red_circle: "🔴", large_yellow_circle: "🟡", large_orange_circle: "🟠",
  arrows_counterclockwise: "🔄", zzz: "💤", eyes: "👀", memo: "📝", tada: "🎉",
  thumbsup: "👍", "+1": "👍", fire: "🔥", sos: "🆘", no_entry: "⛔", information_source: "ℹ️",
  bar_chart: "📊", clipboard: "📋", lock: "🔒", link: "🔗", calendar: "📅", shopping_trolley: "🛒",
  convenience_store: "🏪", factory: "🏭", heavy_minus_sign: "➖", heavy_plus_sign: "➕",
  arrow_right: "➡️", arrow_up: "⬆️", arrow_down: "⬇️", question: "❓", exclamation: "❗",
  speech_balloon: "💬", robot_face: "🤖", gear: "⚙️", pushpin: "📌", stopwatch: "⏱️",
};

// ------------------------------------------------------------------ helpers

const $ = (id) => document.getElementById(id);

function esc(s) {
  return String(s ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

function unesc(s) {
  return String(s ?? "").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function emoji(html) {
  return html.replace(/:([a-z0-9_+\-]+):/g, (m, name) => EMOJI[name] || m);
}

function userOf(id) {
  return (STATE && STATE.users[id]) || { id, name: id, real_name: id, is_bot: false };
}

function displayName(id) {
  const u = userOf(id);
  if (u.is_bot) return u.name;
  return u.real_name.replace(/\s*\(.*\)$/, "") || u.name;
}

function initials(id) {
  const u = userOf(id);
  const words = (u.real_name || u.name).replace(/\(.*\)/, "").trim().split(/\s+/);
  return ((words[0] || "?")[0] + (words[1] ? words[1][0] : "")).toUpperCase();
}

const PALETTE = ["#4a154b", "#1264a3", "#2bac76", "#e8912d", "#cd2553", "#0b4c8c", "#6b3fa0", "#1d9bd1"];
function colorOf(id) {
  if (userOf(id).is_bot) return "#2eb67d";
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

function avatar(id, cls = "") {
  return `<span class="avatar ${cls}" style="background:${colorOf(id)}">${esc(initials(id))}</span>`;
}

function tsDate(ts) { return new Date(parseFloat(ts) * 1000); }

function timeOf(ts) {
  return tsDate(ts).toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
}

function dayOf(ts) {
  const d = tsDate(ts);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86400000);
  if (d.toDateString() === today.toDateString()) return "Today";
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  return d.toLocaleDateString([], { weekday: "long", month: "long", day: "numeric" });
}

function ordinal(n) {
  const s = ["th", "st", "nd", "rd"], v = n % 100;
  return n + (s[(v - 20) % 10] || s[v] || s[0]);
}

function slackDate(epoch, format) {
  const d = new Date(epoch * 1000);
  if (isNaN(d.getTime())) return null;
  const month = d.toLocaleDateString("en-US", { month: "long" });
  const mon = d.toLocaleDateString("en-US", { month: "short" });
  const weekday = d.toLocaleDateString("en-US", { weekday: "long" });
  const date = `${month} ${ordinal(d.getDate())}, ${d.getFullYear()}`;
  const dateShort = `${mon} ${d.getDate()}, ${d.getFullYear()}`;
  const dateLong = `${weekday}, ${date}`;
  const pretty = (fallback) => {
    const day = d.toDateString();
    if (day === new Date().toDateString()) return "today";
    if (day === new Date(Date.now() - 86400000).toDateString()) return "yesterday";
    if (day === new Date(Date.now() + 86400000).toDateString()) return "tomorrow";
    return fallback;
  };
  const secs = Math.round((Date.now() - d.getTime()) / 1000);
  const ago = secs < 60 ? "just now" : secs < 3600 ? `${Math.floor(secs / 60)} minutes ago`
    : secs < 86400 ? `${Math.floor(secs / 3600)} hours ago` : `${Math.floor(secs / 86400)} days ago`;
  const pad = (n) => String(n).padStart(2, "0");
  const tokens = {
    date_num: `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`,
    date, date_short: dateShort, date_long: dateLong,
    date_pretty: pretty(date), date_short_pretty: pretty(dateShort), date_long_pretty: pretty(dateLong),
    time: d.toLocaleTimeString("en-US", { hour: "numeric", minute: "2-digit" }),
    time_secs: d.toLocaleTimeString("en-US", { hour: "numeric", minute: "2-digit", second: "2-digit" }),
    ago,
  };
  let unknown = false;
  const out = format.replace(/\{(\w+)\}/g, (m, k) => {
    if (k in tokens) return tokens[k];
    unknown = true;
    return m;
  });
  return unknown ? null : out;
}

// ------------------------------------------------------------------ mrkdwn

function special(inner) {
  const [target, label] = splitOnce(inner, "|");
  if (target.startsWith("@")) {
    return `<span class="mention">@${esc(displayNameOrLabel(target.slice(1), label))}</span>`;
  }
  if (target.startsWith("#")) {
    const ch = STATE && STATE.channels.find((c) => c.id === target.slice(1));
    return `<span class="mention">#${esc(label || (ch ? ch.name : target.slice(1)))}</span>`;
  }
  if (target.startsWith("!")) {
    const [kind, ...rest] = target.slice(1).split("^");
    if (kind === "here" || kind === "channel" || kind === "everyone") {
      return `<span class="mention broadcast">@${esc(kind)}</span>`;
    }
    if (kind === "subteam") {
      return `<span class="mention">${esc(label || "@" + rest[0])}</span>`;
    }
    if (kind === "date") {
      const text = slackDate(parseInt(rest[0], 10), rest[1] || "{date}");
      const shown = esc(text === null ? (label || "") : text);
      return rest[2] ? `<a href="${esc(rest[2])}" target="_blank" rel="noopener">${shown}</a>`
        : `<span class="date" title="${esc(new Date(parseInt(rest[0], 10) * 1000).toString())}">${shown}</span>`;
    }
    return esc(label || kind);
  }
  const url = unesc(target);
  if (/^(https?:|mailto:)/i.test(url)) {
    return `<a href="${esc(url)}" target="_blank" rel="noopener">${esc(unesc(label || target))}</a>`;
  }
  return esc(unesc(label || target));
}

function displayNameOrLabel(id, label) {
  if (STATE && STATE.users[id]) return userOf(id).name;
  return label || id;
}

function splitOnce(s, sep) {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ""] : [s.slice(0, i), s.slice(i + 1)];
}

function mrkdwn(src) {
  const held = [];
  const hold = (html) => `\u0000${held.push(html) - 1}\u0000`;
  let s = String(src ?? "");
  s = s.replace(/```([\s\S]*?)```/g, (_, code) => hold(`<pre class="pre">${esc(unesc(code.replace(/^\n/, "")))}</pre>`));
  s = s.replace(/`([^`\n]+)`/g, (_, code) => hold(`<code>${esc(unesc(code))}</code>`));
  s = s.replace(/<([^<>\n]+)>/g, (_, inner) => hold(special(inner)));
  s = esc(unesc(s));
  s = s.replace(/(^|[^\w*])\*(?=\S)([^*\n]*?\S)\*(?!\w)/g, "$1<b>$2</b>");
  s = s.replace(/(^|[^\w_])_(?=\S)([^_\n]*?\S)_(?!\w)/g, "$1<i>$2</i>");
  s = s.replace(/(^|[^\w~])~(?=\S)([^~\n]*?\S)~(?!\w)/g, "$1<s>$2</s>");
  s = emoji(s);
  s = s.split("\n").map((line) => (line.startsWith("&gt; ") || line === "&gt;")
    ? `<blockquote>${line.replace(/^&gt; ?/, "")}</blockquote>` : line).join("\n");
  s = s.replace(/<\/blockquote>\n<blockquote>/g, "<br>").replace(/\n/g, "<br>");
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => held[Number(i)]);
}

function text(obj) {
  if (!obj) return "";
  if (typeof obj === "string") return mrkdwn(obj);
  if (obj.type === "mrkdwn") return obj.verbatim ? esc(obj.text) : mrkdwn(obj.text);
  return emoji(esc(obj.text));
}

function plain(obj) {
  return obj ? emoji(esc(obj.text)) : "";
}

// ------------------------------------------------------------------ blocks

function element(el, ctx) {
  const i = ++elementSeq;
  ELEMENTS.set(i, { el, ctx });
  switch (el.type) {
    case "button": {
      const style = el.style === "primary" ? "primary" : el.style === "danger" ? "danger" : "";
      return `<button type="button" class="btn ${style}" data-el="${i}">${plain(el.text)}</button>`;
    }
    case "static_select":
    case "external_select":
    case "users_select":
    case "conversations_select":
    case "channels_select": {
      const opts = options(el);
      const initial = el.initial_option ? el.initial_option.value : null;
      return `<select class="select" data-el="${i}">
        <option value="" disabled ${initial === null ? "selected" : ""} hidden>${esc(el.placeholder ? el.placeholder.text : "Select an item")}</option>
        ${opts.map((o) => `<option value="${esc(o.value)}" ${o.value === initial ? "selected" : ""}>${esc(o.text.text)}</option>`).join("")}
      </select>`;
    }
    case "overflow":
      return `<select class="select overflow" data-el="${i}" aria-label="More actions">
        <option value="" selected disabled hidden>⋯</option>
        ${options(el).map((o) => `<option value="${esc(o.value)}">${esc(o.text.text)}</option>`).join("")}
      </select>`;
    case "image":
      return `<img class="el-image" src="${esc(el.image_url)}" alt="${esc(el.alt_text)}">`;
    case "datepicker":
      return `<input class="select" type="date" disabled value="${esc(el.initial_date || "")}">`;
    default:
      return `<span class="muted">[${esc(el.type)}]</span>`;
  }
}

function options(el) {
  const out = [...(el.options || [])];
  for (const g of el.option_groups || []) out.push(...(g.options || []));
  return out;
}

function block(b, ctx) {
  const c = { ...ctx, block_id: b.block_id };
  switch (b.type) {
    case "header":
      return `<div class="b-header">${plain(b.text)}</div>`;
    case "section": {
      const fields = b.fields
        ? `<div class="b-fields">${b.fields.map((f) => `<div class="b-field">${text(f)}</div>`).join("")}</div>` : "";
      const acc = b.accessory
        ? `<div class="b-accessory ${b.accessory.type === "image" ? "acc-image" : ""}">${element(b.accessory, c)}</div>` : "";
      return `<div class="b-section"><div class="b-section-body">${b.text ? `<div class="b-text">${text(b.text)}</div>` : ""}${fields}</div>${acc}</div>`;
    }
    case "context":
      return `<div class="b-context">${(b.elements || []).map((e) => e.type === "image"
        ? `<img class="ctx-image" src="${esc(e.image_url)}" alt="${esc(e.alt_text)}">`
        : `<span>${text(e)}</span>`).join("")}</div>`;
    case "divider":
      return `<hr class="b-divider">`;
    case "actions":
      return `<div class="b-actions">${(b.elements || []).map((e) => element(e, c)).join("")}</div>`;
    case "image": {
      const src = b.image_url || (b.slack_file && b.slack_file.url) || "";
      return `<figure class="b-image">${b.title ? `<figcaption>${plain(b.title)}</figcaption>` : ""}<img src="${esc(src)}" alt="${esc(b.alt_text)}"></figure>`;
    }
    case "markdown":
      return `<div class="b-text">${mrkdwn(b.text)}</div>`;
    case "rich_text":
      return `<div class="b-text">${richText(b.elements || [])}</div>`;
    default:
      return `<div class="b-unknown muted">[${esc(b.type)} block]</div>`;
  }
}

function richText(elements) {
  return elements.map((e) => {
    if (e.type === "rich_text_section") return richInline(e.elements || []);
    if (e.type === "rich_text_preformatted") return `<pre class="pre">${richInline(e.elements || [])}</pre>`;
    if (e.type === "rich_text_quote") return `<blockquote>${richInline(e.elements || [])}</blockquote>`;
    if (e.type === "rich_text_list") {
      const tag = e.style === "ordered" ? "ol" : "ul";
      return `<${tag}>${(e.elements || []).map((s) => `<li>${richInline(s.elements || [])}</li>`).join("")}</${tag}>`;
    }
    return "";
  }).join("");
}

function richInline(elements) {
  return elements.map((e) => {
    let h = "";
    if (e.type === "text") h = esc(e.text).replace(/\n/g, "<br>");
    else if (e.type === "link") h = `<a href="${esc(e.url)}" target="_blank" rel="noopener">${esc(e.text || e.url)}</a>`;
    else if (e.type === "user") h = `<span class="mention">@${esc(userOf(e.user_id).name)}</span>`;
    else if (e.type === "emoji") h = EMOJI[e.name] || `:${esc(e.name)}:`;
    else if (e.type === "channel") h = `<span class="mention">#${esc(e.channel_id)}</span>`;
    const st = e.style || {};
    if (st.code) h = `<code>${h}</code>`;
    if (st.bold) h = `<b>${h}</b>`;
    if (st.italic) h = `<i>${h}</i>`;
    if (st.strike) h = `<s>${h}</s>`;
    return h;
  }).join("");
}

function files(list) {
  return (list || []).map((f) => (f.mimetype || "").startsWith("image/")
    ? `<figure class="file-image"><figcaption>${esc(f.title || f.name)}</figcaption><a href="${esc(f.ui_url)}" target="_blank"><img src="${esc(f.ui_url)}" alt="${esc(f.alt_txt || f.title || f.name)}"></a></figure>`
    : `<a class="file-card" href="${esc(f.ui_url)}" target="_blank"><span class="file-icon">${esc((f.filetype || "file").slice(0, 4).toUpperCase())}</span><span><b>${esc(f.title || f.name)}</b><br><span class="muted">${esc(f.mimetype || "")}</span></span></a>`).join("");
}

// ------------------------------------------------------------------ messages

function messageHtml(m, opts = {}) {
  const ctx = { message_ts: m.ts, is_ephemeral: !!m.ephemeral };
  const name = m.slackbot ? "Slackbot" : displayName(m.user);
  const av = m.slackbot ? `<span class="avatar" style="background:#e01e5a">SB</span>` : avatar(m.user);
  const body = m.blocks && m.blocks.length
    ? m.blocks.map((b) => block(b, ctx)).join("")
    : `<div class="b-text">${mrkdwn(m.text)}</div>`;
  const edited = m.edited ? ` <span class="edited">(edited)</span>` : "";
  const badge = (m.is_bot || m.slackbot) ? `<span class="app-badge">APP</span>` : "";
  const eph = m.ephemeral
    ? `<div class="ephemeral-label">👁 Only visible to you</div>` : "";
  const reactions = (m.reactions || []).length
    ? `<div class="reactions">${m.reactions.map((r) => `<span class="reaction">${EMOJI[r.name] || ":" + esc(r.name) + ":"} <b>${r.count}</b></span>`).join("")}</div>` : "";
  const replies = !opts.inThread && m.replies && m.replies.filter((r) => !r.ephemeral).length
    ? repliesLink(m) : "";
  const dismiss = m.ephemeral ? `<a class="dismiss" data-dismiss="${esc(m.ts)}">Dismiss</a>` : "";
  return `<div class="message ${m.ephemeral ? "ephemeral" : ""}" data-ts="${esc(m.ts)}" data-ephemeral="${m.ephemeral ? 1 : 0}">
    ${av}
    <div class="message-main">
      ${eph}
      <div class="message-meta"><span class="message-author">${esc(name)}</span>${badge}<span class="message-time" title="${esc(tsDate(m.ts).toString())}">${esc(timeOf(m.ts))}</span></div>
      <div class="message-body">${body}${edited}</div>
      ${files(m.files)}
      ${reactions}
      ${replies}
      ${dismiss}
    </div>
  </div>`;
}

function repliesLink(m) {
  const visible = m.replies.filter((r) => !r.ephemeral);
  const people = [...new Set(visible.map((r) => r.user))].slice(0, 4);
  const last = visible[visible.length - 1];
  const n = visible.length;
  return `<a class="replies" data-thread="${esc(m.ts)}">${people.map((u) => avatar(u, "avatar-xs")).join("")}
    <span class="replies-count">${n} ${n === 1 ? "reply" : "replies"}</span>
    <span class="replies-last">Last reply ${esc(dayOf(last.ts).toLowerCase() === "today" ? "today" : dayOf(last.ts))} at ${esc(timeOf(last.ts))}</span></a>`;
}

function renderMessages() {
  const list = $("messages");
  const items = [
    ...STATE.messages,
    ...STATE.ephemerals.filter((e) => !dismissed.has(e.ts)),
    ...notes.filter((n) => n.user_for === USER && !dismissed.has(n.ts)),
  ].sort((a, b) => parseFloat(a.ts) - parseFloat(b.ts));
  const key = JSON.stringify([USER, items, STATE.users]);
  if (key === lastListKey) return;
  lastListKey = key;
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  let html = "";
  let day = null;
  if (!items.length) {
    html = `<div class="empty">This is the very beginning of <b>#${esc(STATE.channel.name)}</b>. Messages from driftwatch will show up here.</div>`;
  }
  for (const m of items) {
    const d = dayOf(m.ts);
    if (d !== day) {
      html += `<div class="day-divider"><span>${esc(d)}</span></div>`;
      day = d;
    }
    html += messageHtml(m);
  }
  list.innerHTML = html;
  if (nearBottom || !list.dataset.scrolled) {
    list.scrollTop = list.scrollHeight;
    list.dataset.scrolled = "1";
  }
}

function renderThread() {
  const pane = $("thread");
  const parent = openThread && STATE.messages.find((m) => m.ts === openThread);
  if (!parent) {
    pane.classList.add("hidden");
    lastThreadKey = "";
    return;
  }
  pane.classList.remove("hidden");
  $("thread-channel").textContent = STATE.channel.name;
  const replies = parent.replies.filter((r) => !dismissed.has(r.ts));
  const key = JSON.stringify([USER, parent, replies]);
  if (key === lastThreadKey) return;
  lastThreadKey = key;
  const n = replies.filter((r) => !r.ephemeral).length;
  $("thread-messages").innerHTML = messageHtml(parent, { inThread: true })
    + `<div class="thread-count"><span>${n} ${n === 1 ? "reply" : "replies"}</span></div>`
    + replies.map((r) => messageHtml(r, { inThread: true })).join("");
  const box = $("thread-messages");
  box.scrollTop = box.scrollHeight;
  box.querySelectorAll("img").forEach((img) => img.addEventListener("load", () => { box.scrollTop = box.scrollHeight; }, { once: true }));
}

function renderChrome() {
  document.title = `#${STATE.channel.name} — Driftwatch Sandbox — Slack`;
  $("team-name").textContent = STATE.team.name;
  $("channel-name").textContent = STATE.channel.name;
  $("composer-input").placeholder = `Message #${STATE.channel.name}`;
  $("channels").innerHTML = STATE.channels.map((c) =>
    `<li class="sidebar-item ${c.id === CHANNEL ? "active" : ""}"><a href="/channel/${esc(c.id)}?user=${esc(USER)}"><span class="hash">#</span> ${esc(c.name)}</a></li>`).join("");
  const picker = $("user-picker");
  const humans = Object.values(STATE.users).filter((u) => !u.is_bot);
  const optionsHtml = humans.map((u) => `<option value="${esc(u.id)}" ${u.id === USER ? "selected" : ""}>${esc(u.real_name)} · ${esc(u.id)}</option>`).join("");
  if (picker.dataset.html !== optionsHtml) {
    picker.innerHTML = optionsHtml;
    picker.dataset.html = optionsHtml;
  }
  const av = $("viewer-avatar");
  av.textContent = initials(USER);
  av.style.background = colorOf(USER);
}

function render() {
  renderChrome();
  renderMessages();
  renderThread();
  renderModal();
  const live = new Set([...document.querySelectorAll("[data-el]")].map((n) => Number(n.dataset.el)));
  for (const id of [...ELEMENTS.keys()]) if (!live.has(id)) ELEMENTS.delete(id);
}

// ------------------------------------------------------------------ loading

let loading = null;
let again = false;

async function load() {
  if (loading) {
    again = true;
    return loading;
  }
  loading = (async () => {
    do {
      again = false;
      const r = await fetch(`/_ui/state?channel=${encodeURIComponent(CHANNEL)}&user=${encodeURIComponent(USER)}`);
      if (!r.ok) {
        toast(`Could not load the channel (${r.status})`);
        break;
      }
      STATE = await r.json();
      render();
    } while (again);
  })();
  try { await loading; } finally { loading = null; }
}

function connect() {
  const live = $("live");
  const source = new EventSource("/_ui/events");
  source.addEventListener("change", () => load());
  source.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  source.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
}

// ------------------------------------------------------------------ posting

async function post(path, body) {
  const r = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  let data = {};
  try { data = await r.json(); } catch (e) { data = { ok: false, error: `HTTP ${r.status}` }; }
  return data;
}

function explain(error) {
  if (error === "no_interactivity_url") return "This app has no Request URL (set FakeSlack.interactivity_url).";
  if (error === "dispatch_failed") return "The app didn’t respond (dispatch_failed).";
  if (error === "operation_timeout") return "The app didn’t respond in time (operation_timeout).";
  return `The app answered with an error: ${error}`;
}

function toast(message) {
  const t = document.createElement("div");
  t.className = "toast";
  t.innerHTML = `⚠️ ${esc(message)}`;
  $("toasts").appendChild(t);
  setTimeout(() => t.remove(), 6000);
}

async function sendAction(entry, value, control) {
  const { el, ctx } = entry;
  if (control) control.classList.add("busy");
  try {
    const res = await post("/_ui/action", {
      channel: CHANNEL, user: USER, message_ts: ctx.message_ts, block_id: ctx.block_id,
      action_id: el.action_id, value, is_ephemeral: ctx.is_ephemeral,
    });
    if (!res.ok) toast(explain(res.error));
  } finally {
    if (control) control.classList.remove("busy");
  }
}

function confirmDialog(confirm) {
  return new Promise((resolve) => {
    const overlay = $("overlay");
    const danger = confirm.style === "danger";
    overlay.innerHTML = `<div class="dialog" role="alertdialog" aria-modal="true" aria-labelledby="confirm-title">
      <div class="dialog-title" id="confirm-title">${plain(confirm.title) || "Are you sure?"}</div>
      <div class="dialog-text">${text(confirm.text)}</div>
      <div class="dialog-buttons">
        <button type="button" class="btn" data-answer="no">${plain(confirm.deny) || "Cancel"}</button>
        <button type="button" class="btn ${danger ? "danger" : "primary"}" data-answer="yes">${plain(confirm.confirm) || "Yes"}</button>
      </div></div>`;
    overlay.classList.remove("hidden");
    const done = (answer) => {
      overlay.classList.add("hidden");
      overlay.innerHTML = "";
      overlay.onclick = null;
      document.removeEventListener("keydown", onKey);
      resolve(answer);
      if (STATE) renderModal(true);
    };
    const onKey = (e) => { if (e.key === "Escape") done(false); };
    document.addEventListener("keydown", onKey);
    overlay.onclick = (e) => {
      const b = e.target.closest("[data-answer]");
      if (b) done(b.dataset.answer === "yes");
      else if (e.target === overlay) done(false);
    };
    overlay.querySelector('[data-answer="yes"]').focus();
  });
}

document.addEventListener("click", async (e) => {
  const dismiss = e.target.closest("[data-dismiss]");
  if (dismiss) {
    dismissed.add(dismiss.dataset.dismiss);
    lastListKey = "";
    render();
    return;
  }
  const thread = e.target.closest("[data-thread]");
  if (thread) {
    openThread = thread.dataset.thread;
    lastThreadKey = "";
    renderThread();
    return;
  }
  const button = e.target.closest("button[data-el]");
  if (!button || button.closest(".modal")) return;
  const entry = ELEMENTS.get(Number(button.dataset.el));
  if (!entry) return;
  if (entry.el.url) window.open(entry.el.url, "_blank", "noopener");
  if (entry.el.confirm && !(await confirmDialog(entry.el.confirm))) return;
  await sendAction(entry, entry.el.value ?? null, button);
});

document.addEventListener("change", async (e) => {
  const select = e.target.closest("select[data-el]");
  if (!select || select.closest(".modal")) return;
  const entry = ELEMENTS.get(Number(select.dataset.el));
  if (!entry) return;
  const value = select.value;
  if (entry.el.confirm && !(await confirmDialog(entry.el.confirm))) {
    select.selectedIndex = 0;
    return;
  }
  if (entry.el.type === "overflow") select.selectedIndex = 0;
  await sendAction(entry, value, select);
});

async function submitComposer(input, threadTs) {
  const value = input.value.trim();
  if (!value) return;
  input.value = "";
  autosize(input);
  if (value.startsWith("/") && !threadTs) {
    const res = await post("/_ui/command", { channel: CHANNEL, user: USER, text: value });
    if (!res.ok) {
      const command = value.split(/\s+/)[0];
      notes.push({
        ts: String(Date.now() / 1000), user: "USLACKBOT", slackbot: true, ephemeral: true,
        user_for: USER, blocks: [], files: [], reactions: [],
        text: res.error === "no_interactivity_url"
          ? `${command} is not a command this workspace knows (no Request URL is set).`
          : `${command} failed with the error "${res.error}"`,
      });
      lastListKey = "";
      renderMessages();
    }
    return;
  }
  const res = await post("/_ui/message", { channel: CHANNEL, user: USER, text: value, thread_ts: threadTs || null });
  if (!res.ok) toast(`Could not post: ${res.error}`);
}

function autosize(el) {
  el.style.height = "auto";
  el.style.height = Math.min(el.scrollHeight, 200) + "px";
}

for (const [formId, inputId, thread] of [["composer", "composer-input", false], ["thread-composer", "thread-input", true]]) {
  const form = $(formId);
  const input = $(inputId);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    submitComposer(input, thread ? openThread : null);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submitComposer(input, thread ? openThread : null);
    }
  });
  input.addEventListener("input", () => autosize(input));
}

$("thread-close").addEventListener("click", () => {
  openThread = null;
  renderThread();
});

$("user-picker").addEventListener("change", (e) => {
  USER = e.target.value;
  localStorage.setItem("fakeslack.user", USER);
  const url = new URL(location.href);
  url.searchParams.set("user", USER);
  history.replaceState(null, "", url);
  modalKey = "";
  lastListKey = "";
  load();
});

// ------------------------------------------------------------------ modals

function inputElement(b) {
  const el = b.element;
  const name = `${b.block_id}::${el.action_id}`;
  const ph = el.placeholder ? esc(el.placeholder.text) : "";
  switch (el.type) {
    case "plain_text_input":
      return el.multiline
        ? `<textarea class="field" name="${esc(name)}" placeholder="${ph}" rows="4" ${el.max_length ? `maxlength="${el.max_length}"` : ""}>${esc(el.initial_value || "")}</textarea>`
        : `<input class="field" type="text" name="${esc(name)}" placeholder="${ph}" value="${esc(el.initial_value || "")}" ${el.max_length ? `maxlength="${el.max_length}"` : ""}>`;
    case "number_input":
      return `<input class="field" type="number" name="${esc(name)}" placeholder="${ph}" value="${esc(el.initial_value || "")}" ${el.is_decimal_allowed ? 'step="any"' : 'step="1"'}>`;
    case "datepicker":
      return `<input class="field" type="date" name="${esc(name)}" value="${esc(el.initial_date || "")}">`;
    case "static_select":
    case "external_select": {
      const initial = el.initial_option ? el.initial_option.value : "";
      return `<select class="field" name="${esc(name)}">
        <option value="" ${initial ? "" : "selected"} disabled hidden>${ph || "Select an option"}</option>
        ${options(el).map((o) => `<option value="${esc(o.value)}" ${o.value === initial ? "selected" : ""}>${esc(o.text.text)}</option>`).join("")}</select>`;
    }
    case "multi_static_select": {
      const initial = new Set((el.initial_options || []).map((o) => o.value));
      return `<select class="field" multiple name="${esc(name)}">${options(el).map((o) => `<option value="${esc(o.value)}" ${initial.has(o.value) ? "selected" : ""}>${esc(o.text.text)}</option>`).join("")}</select>`;
    }
    case "radio_buttons": {
      const initial = el.initial_option ? el.initial_option.value : null;
      return `<div class="choices" data-name="${esc(name)}">${options(el).map((o) => `<label class="choice"><input type="radio" name="${esc(name)}" value="${esc(o.value)}" ${o.value === initial ? "checked" : ""}><span>${text(o.text)}${o.description ? `<span class="choice-desc">${text(o.description)}</span>` : ""}</span></label>`).join("")}</div>`;
    }
    case "checkboxes": {
      const initial = new Set((el.initial_options || []).map((o) => o.value));
      return `<div class="choices" data-name="${esc(name)}">${options(el).map((o) => `<label class="choice"><input type="checkbox" name="${esc(name)}" value="${esc(o.value)}" ${initial.has(o.value) ? "checked" : ""}><span>${text(o.text)}${o.description ? `<span class="choice-desc">${text(o.description)}</span>` : ""}</span></label>`).join("")}</div>`;
    }
    default:
      return `<div class="muted">[${esc(el.type)}]</div>`;
  }
}

function modalBlock(b) {
  if (b.type !== "input") return block(b, { message_ts: null, is_ephemeral: false });
  const optional = b.optional ? ` <span class="muted">(optional)</span>` : "";
  return `<div class="input-block" data-block="${esc(b.block_id)}">
    <label class="input-label">${plain(b.label)}${optional}</label>
    ${inputElement(b)}
    ${b.hint ? `<div class="input-hint">${plain(b.hint)}</div>` : ""}
    <div class="input-error" hidden></div>
  </div>`;
}

function renderModal(force = false) {
  const overlay = $("overlay");
  if (overlay.querySelector(".dialog")) return; // a confirm dialog is up; come back after
  const view = STATE && STATE.view;
  if (!view) {
    if (overlay.querySelector(".modal")) {
      overlay.classList.add("hidden");
      overlay.innerHTML = "";
    }
    modalKey = "";
    return;
  }
  const key = `${view.id}:${view.hash}`;
  if (key !== modalKey || force || !overlay.querySelector(".modal")) {
    modalKey = key;
    overlay.innerHTML = `<form class="modal" role="dialog" aria-modal="true" aria-labelledby="modal-title" data-view="${esc(view.id)}" novalidate>
      <div class="modal-header"><span class="avatar avatar-sm bot-avatar">D</span><div class="modal-title" id="modal-title">${plain(view.title)}</div><button type="button" class="icon-btn" data-close aria-label="Close">✕</button></div>
      <div class="modal-body">${(view.blocks || []).map(modalBlock).join("")}</div>
      <div class="modal-footer">
        <button type="button" class="btn" data-close>${plain(view.close) || "Cancel"}</button>
        ${view.submit ? `<button type="submit" class="btn primary">${plain(view.submit)}</button>` : ""}
      </div></form>`;
    overlay.classList.remove("hidden");
    const form = overlay.querySelector(".modal");
    form.addEventListener("submit", (e) => { e.preventDefault(); submitModal(form, view); });
    form.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", () => closeModal(view)));
    const first = form.querySelector(".field, input");
    if (first) first.focus();
  }
  showErrors(STATE.view_errors || {});
}

function showErrors(errors) {
  document.querySelectorAll(".modal .input-block").forEach((node) => {
    const message = errors[node.dataset.block];
    const box = node.querySelector(".input-error");
    box.hidden = !message;
    box.textContent = message || "";
    node.classList.toggle("has-error", !!message);
  });
}

function modalValues(form, view) {
  const values = {};
  const missing = {};
  for (const b of view.blocks || []) {
    if (b.type !== "input" || !b.element) continue;
    const name = `${b.block_id}::${b.element.action_id}`;
    let raw = null;
    if (b.element.type === "checkboxes") {
      raw = [...form.querySelectorAll(`input[type=checkbox]`)].filter((i) => i.name === name && i.checked).map((i) => i.value);
    } else if (b.element.type === "radio_buttons") {
      const checked = [...form.querySelectorAll(`input[type=radio]`)].find((i) => i.name === name && i.checked);
      raw = checked ? checked.value : null;
    } else if (b.element.type === "multi_static_select") {
      const sel = [...form.querySelectorAll("select")].find((s) => s.name === name);
      raw = sel ? [...sel.selectedOptions].map((o) => o.value) : [];
    } else {
      const field = [...form.querySelectorAll(".field")].find((f) => f.name === name);
      raw = field && field.value !== "" ? field.value : null;
    }
    (values[b.block_id] = values[b.block_id] || {})[b.element.action_id] = raw;
    const empty = raw === null || raw === "" || (Array.isArray(raw) && !raw.length);
    if (empty && !b.optional) missing[b.block_id] = "Please complete this required field.";
  }
  return { values, missing };
}

async function submitModal(form, view) {
  const { values, missing } = modalValues(form, view);
  if (Object.keys(missing).length) {
    showErrors(missing);
    return;
  }
  const submit = form.querySelector("button[type=submit]");
  if (submit) submit.classList.add("busy");
  try {
    const res = await post("/_ui/view_submission", { view_id: view.id, user: USER, values });
    if (res.errors && Object.keys(res.errors).length) showErrors(res.errors);
    else if (!res.ok) toast(explain(res.error));
  } finally {
    if (submit) submit.classList.remove("busy");
  }
}

async function closeModal(view) {
  const res = await post("/_ui/view_closed", { view_id: view.id, user: USER });
  if (!res.ok && res.error !== "view_not_found") toast(explain(res.error));
}

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && STATE && STATE.view && !$("overlay").querySelector(".dialog")) closeModal(STATE.view);
});

// ------------------------------------------------------------------ start

load().then(connect);
