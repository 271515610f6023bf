/**
 * The fleet page: one HTML document with its style and script inline (no build step, nothing
 * fetched from elsewhere). The script opens /events (Server-Sent Events) and redraws from each
 * view it receives. Every value from etcd reaches the document as a text node or an attribute
 * value set through the DOM, never as markup; the Content-Security-Policy allows only this
 * script and style (by hash), so even a mistake there could not run injected code.
 */
import { createHash } from 'node:crypto';

const STYLE = `
:root { --bg: #f4f6f9; --card: #fff; --ink: #1d2733; --mute: #6b7785; --line: #e2e7ee; --head: #16202c;
  --ok: #1f9d55; --warn: #c77700; --bad: #d12f2f; --info: #2b6cb0; --chip: #eef2f7; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: var(--ink); background: var(--bg); }
header { background: var(--head); color: #e8eef5; padding: 12px 24px; display: flex; gap: 24px; align-items: center; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; font-weight: 600; letter-spacing: .2px; }
header .meta { color: #9fb0c2; font-size: 13px; }
header .meta b { color: #e8eef5; font-weight: 600; }
#live { margin-left: auto; font-size: 13px; display: flex; align-items: center; gap: 8px; }
#live::before { content: ""; width: 10px; height: 10px; border-radius: 50%; background: var(--mute); }
#live.on::before { background: #3ddc84; box-shadow: 0 0 6px #3ddc84; }
#live.stale::before { background: var(--warn); }
#live.off::before { background: var(--bad); }
main { padding: 20px 24px 40px; max-width: 1600px; margin: 0 auto; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 12px; margin-bottom: 20px; }
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.tile .n { font-size: 26px; font-weight: 650; }
.tile .l { color: var(--mute); font-size: 12px; text-transform: uppercase; letter-spacing: .6px; }
.tile .d { color: var(--mute); font-size: 12px; }
.tile.bad .n { color: var(--bad); } .tile.warn .n { color: var(--warn); } .tile.ok .n { color: var(--ok); }
section { margin-bottom: 22px; }
section > h2 { font-size: 15px; margin: 0 0 8px; text-transform: uppercase; letter-spacing: .7px; color: var(--mute); font-weight: 600; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; margin-bottom: 12px; overflow-x: auto; }
.card > .title { padding: 10px 14px; border-bottom: 1px solid var(--line); display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
.card > .title h3 { margin: 0; font-size: 16px; }
.card > .title .sub { color: var(--mute); font-size: 13px; }
.card > .note { padding: 6px 14px; font-size: 13px; border-bottom: 1px solid var(--line); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 14px; border-bottom: 1px solid var(--line); vertical-align: top; white-space: nowrap; }
td.wrap { white-space: normal; word-break: break-word; }
th { font-size: 12px; color: var(--mute); font-weight: 600; text-transform: uppercase; letter-spacing: .5px; background: #fafbfd; }
tr:last-child td { border-bottom: 0; }
.mono { font-family: "DejaVu Sans Mono", ui-monospace, monospace; font-size: 13px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; background: var(--chip); color: var(--ink); }
.badge.ready, .badge.ok { background: #e3f6ec; color: var(--ok); }
.badge.starting, .badge.unknown { background: #e7f0fb; color: var(--info); }
.badge.draining, .badge.warn { background: #fdf1dc; color: var(--warn); }
.badge.invalid, .badge.bad, .badge.ejected, .badge.failing, .badge.ejected\\+failing { background: #fbe5e5; color: var(--bad); }
.muted { color: var(--mute); }
.small { font-size: 12px; }
td.counts div { font-size: 12px; line-height: 1.35; }
.bad-text { color: var(--bad); } .warn-text { color: var(--warn); }
.empty { padding: 10px 14px; color: var(--mute); }
.routes .badge { margin-right: 4px; font-weight: 500; }
`;

const SCRIPT = `
'use strict';
var main = document.getElementById('main');
var live = document.getElementById('live');
var metaEl = document.getElementById('meta');
var current = null;
var sseOpen = false;

function el(tag, attrs) {
  var n = document.createElement(tag);
  if (attrs) for (var k in attrs) {
    var v = attrs[k];
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') n.className = v; else n.setAttribute(k, String(v));
  }
  for (var i = 2; i < arguments.length; i++) add(n, arguments[i]);
  return n;
}
function add(n, c) {
  if (c === null || c === undefined || c === false) return;
  if (Array.isArray(c)) { c.forEach(function (x) { add(n, x); }); return; }
  n.append(c instanceof Node ? c : document.createTextNode(String(c)));
}
function badge(text, cls) { return el('span', { class: 'badge ' + (cls || text) }, text); }
function table(head, rows, attrs) {
  return el('table', attrs, el('thead', null, el('tr', null, head.map(function (h) { return el('th', null, h); }))), el('tbody', null, rows));
}
function card(title, sub, body, attrs) {
  return el('div', Object.assign({ class: 'card' }, attrs || {}), title === null ? null : el('div', { class: 'title' }, el('h3', null, title), sub), body);
}
function section(title, kids, attrs) { return el('section', attrs, el('h2', null, title), kids); }
function tile(n, label, detail, cls, id) {
  return el('div', { class: 'tile ' + (cls || ''), 'data-tile': id }, el('div', { class: 'n' }, n), el('div', { class: 'l' }, label), detail ? el('div', { class: 'd' }, detail) : null);
}
function ago(iso) {
  var t = Date.parse(iso);
  if (isNaN(t)) return '?';
  var s = Math.max(0, Math.round((Date.now() - t) / 1000));
  return s < 90 ? s + ' s ago' : s < 5400 ? Math.round(s / 60) + ' min ago' : Math.round(s / 3600) + ' h ago';
}
function pct(x) { return Math.round(x * 100) + '%'; }
function mb(b) { return Math.round(b / 1048576) + ' MB'; }

function recordCounts(r) {
  var counts = [[r.rejected, 'rejected', 'bad'], [r.conflicts, 'conflicting', 'warn'], [r.warnings, 'with warnings', 'warn'], [r.unhealthy, 'unhealthy', 'bad']]
    .filter(function (c) { return c[0] > 0; });
  if (counts.length === 0) return el('span', { class: 'muted' }, 'none');
  return counts.map(function (c) { return el('div', { class: c[2] + '-text' }, c[0] + ' ' + c[1]); });
}

function routersSection(v) {
  if (v.routers.length === 0) return section('Routers', card(null, null, el('div', { class: 'empty' }, 'No router is live (no status record under ' + v.prefix + '/routers/).')));
  var rows = v.routers.map(function (r) {
    var lag = r.lag === null ? '?' : r.lag;
    return el('tr', { 'data-router': r.id },
      el('td', { class: 'mono' }, r.id),
      el('td', { 'data-col': 'revision' }, r.revision === null ? '?' : r.revision),
      el('td', { 'data-col': 'lag' }, r.lag === '0' && !r.missingChanges ? badge('0', 'ok') : badge(lag + (r.missingChanges ? ' *' : ''), 'warn')),
      el('td', { class: 'mono' + (r.digestMismatch ? ' bad-text' : ''), 'data-col': 'digest' }, (r.digest === null ? '?' : r.digest) + (r.digestMismatch ? ' !' : '')),
      el('td', null, r.routes === null ? '?' : r.routes),
      el('td', { class: 'counts', 'data-col': 'records' }, recordCounts(r)),
      el('td', { 'data-col': 'load' }, r.load === null ? el('span', { class: 'muted' }, 'not published') : [
        r.load.requestsPerSecond + ' req/s · ' + r.load.connections + ' connections',
        el('div', { class: 'muted small' }, 'event loop ' + pct(r.load.eventLoopUtilization) + ' · CPU ' + r.load.cpu + ' · ' + mb(r.load.rssBytes) + ' · load avg ' + r.load.loadAverage)]),
      el('td', { 'data-updated': r.updatedAt }, r.updatedAt === null ? '?' : ago(r.updatedAt)),
      el('td', { class: 'wrap' }, r.error !== null ? el('span', { class: 'bad-text' }, 'unreadable status record: ' + r.error) : r.notes.join('; ')));
  });
  return section('Routers', card(null, null, [
    table(['Router', 'Revision', 'Lag', 'Digest', 'Routes', 'Records', 'Load', 'Updated', 'Note'], rows, { id: 'routers' }),
    el('div', { class: 'note muted' }, 'Lag: 0 when the router is known current past the newest routing change; otherwise revisions since it was. * has not applied a routing record still in etcd.'),
  ]));
}

function instanceRows(app, routerIds) {
  return app.instances.map(function (i) {
    var byRouter = {};
    i.routers.forEach(function (x) { byRouter[x.router] = x; });
    var url = i.url === null ? el('span', { class: 'bad-text' }, i.error) : i.tunnelRouters === null ? i.url :
      [i.url, el('span', { class: 'muted' }, ' (' + (i.tunnelRouters.length ? 'sessions on ' + i.tunnelRouters.join(', ') : 'no router holds a session') + ')')];
    var inflight = i.inflight === null ? (i.inflightPartial ? '?' : '-') : i.inflight + (i.inflightPartial ? '+' : '');
    return el('tr', { 'data-instance': app.name + '/' + i.id },
      el('td', { class: 'mono' }, i.id, i.unknownFields.length ? el('div', { class: 'warn-text' }, 'unknown fields: ' + i.unknownFields.join(', ')) : null),
      el('td', { 'data-col': 'state' }, badge(i.state === null ? 'invalid' : i.state)),
      el('td', null, i.release === null ? '-' : i.release),
      el('td', { class: 'mono wrap' }, url),
      el('td', { 'data-col': 'inflight' }, inflight),
      routerIds.map(function (id) {
        var x = byRouter[id];
        if (!x) return el('td', { class: 'muted' }, '-');
        return el('td', { 'data-router-cell': id, title: x.reasons.join('; ') + (x.since ? ' since ' + x.since : '') },
          badge(x.health), ' ', el('span', { class: 'muted' }, x.inflight === null ? '? in flight' : x.inflight + ' in flight'),
          x.reasons.length ? el('div', { class: 'bad-text wrap' }, x.reasons.join('; ') + ' since ' + ago(x.since)) : null);
      }));
  });
}

function appsSection(v) {
  var routerIds = v.routers.filter(function (r) { return r.error === null; }).map(function (r) { return r.id; });
  if (v.apps.length === 0) return section('Apps', card(null, null, el('div', { class: 'empty' }, 'No app under ' + v.prefix + '/apps/.')));
  return section('Apps', v.apps.map(function (a) {
    var sub = el('span', { class: 'sub' },
      Object.keys(a.states).sort().map(function (s) { return [badge(a.states[s] + ' ' + s, s), ' ']; }),
      a.error === null ? 'balance ' + a.balance + ' · health ' + a.healthPath : el('span', { class: 'bad-text' }, a.error));
    var notes = [];
    if (a.routes.length) notes.push(el('div', { class: 'note routes' }, a.routes.map(function (r) { return badge(r, 'route'); })));
    if (a.lock !== null) notes.push(el('div', { class: 'note warn-text' }, 'deployment in progress: lock held by ' + a.lock));
    if (a.unknownFields.length) notes.push(el('div', { class: 'note warn-text' }, 'unknown fields in the app record (ignored): ' + a.unknownFields.join(', ')));
    var body = a.instances.length === 0 ? el('div', { class: 'empty' }, 'no instance') :
      table(['Instance', 'State', 'Release', 'URL', 'In flight'].concat(routerIds), instanceRows(a, routerIds));
    return card(a.name, sub, [notes, body], { 'data-app': a.name });
  }));
}

function problemTable(list, third, id, withKept) {
  return table(['Key', 'Revision', third].concat(withKept ? ['Serving instead'] : [], ['Routers']), list.map(function (p) {
    return el('tr', { 'data-key': p.key }, el('td', { class: 'mono wrap' }, p.key), el('td', null, p.revision), el('td', { class: 'wrap' }, p.text),
      withKept ? el('td', null, p.kept === null ? '-' : p.kept) : null, el('td', null, p.routers.join(', ')));
  }), { id: id });
}

function problemsSection(v) {
  var kids = [];
  if (v.rejected.length) kids.push(card('Rejected records', el('span', { class: 'sub' }, 'not applied; each router lists its newest 20'), problemTable(v.rejected, 'Reason', 'rejected', true)));
  if (v.warnings.length) kids.push(card('Warnings', el('span', { class: 'sub' }, 'applied, with fields the schema does not know'), problemTable(v.warnings, 'Warning', 'warnings', false)));
  if (v.conflicts.length) kids.push(card('Route conflicts', null, table(['Route', 'Apps', 'Routers'], v.conflicts.map(function (c) {
    return el('tr', null, el('td', { class: 'mono' }, c.route), el('td', null, c.apps), el('td', null, c.routers.join(', ')));
  }))));
  if (kids.length === 0) return section('Problems', card(null, null, el('div', { class: 'empty' }, 'No router rejects or warns about a record.')), { id: 'problems' });
  return section('Problems', kids, { id: 'problems' });
}

function optionalSections(v) {
  var out = [];
  if (v.overrides.length) out.push(section('Overrides', card(null, null, table(['Host', 'Override', 'Ends'], v.overrides.map(function (o) {
    return el('tr', null, el('td', { class: 'mono' }, o.host), el('td', { class: 'wrap' }, o.what), el('td', null, o.endsInSeconds === undefined || o.endsInSeconds === null ? '-' : o.endsInSeconds === 0 ? 'now' : 'in ' + o.endsInSeconds + ' s'));
  }), { id: 'overrides' }))));
  if (v.certs.length) out.push(section('Certificates', card(null, null, table(['Name', 'Hosts', 'Not after', 'Days left', 'Source', 'Next renewal', 'Problem'], v.certs.map(function (c) {
    var problem = [c.error, c.lastError ? 'last ACME error: ' + c.lastError : null].filter(Boolean).join('; ');
    var days = c.daysLeft === null ? '-' : c.daysLeft;
    return el('tr', null, el('td', { class: 'mono' }, c.name), el('td', { class: 'wrap' }, c.hosts.join(', ') || '-'),
      el('td', null, c.notAfter === null ? '-' : new Date(c.notAfter).toISOString()), el('td', { class: typeof days === 'number' && days < 14 ? 'warn-text' : '' }, days),
      el('td', null, c.source), el('td', null, c.nextRenewal ? new Date(c.nextRenewal).toISOString() : '-'), el('td', { class: 'bad-text wrap' }, problem));
  })), { id: 'certs' })));
  var tunnelled = [];
  v.apps.forEach(function (a) { a.instances.forEach(function (i) { if (i.tunnelRouters !== null) tunnelled.push([a.name, i]); }); });
  if (tunnelled.length || v.tunnelTokens.length) {
    var kids = [];
    if (tunnelled.length) kids.push(card('Tunnel sessions', null, table(['Instance', 'State', 'Routers holding a session'], tunnelled.map(function (x) {
      return el('tr', null, el('td', { class: 'mono' }, x[0] + '/' + x[1].id), el('td', null, badge(x[1].state === null ? 'invalid' : x[1].state)),
        el('td', { class: x[1].tunnelRouters.length ? '' : 'bad-text' }, x[1].tunnelRouters.length ? x[1].tunnelRouters.join(', ') : 'none'));
    }))));
    if (v.tunnelTokens.length) kids.push(card('Tunnel tokens', null, table(['App', 'Token', 'Expiry'], v.tunnelTokens.map(function (t) {
      return el('tr', null, el('td', null, t.app), el('td', { class: 'mono' }, t.tokenId),
        el('td', { class: t.error || t.expired ? 'bad-text' : '' }, t.error ? 'invalid: ' + t.error : t.expiresAt === null ? 'never expires' : (t.expired ? 'expired ' : 'expires ') + t.expiresAt));
    }))));
    out.push(section('Tunnels', kids, { id: 'tunnels' }));
  }
  return out;
}

function tiles(v) {
  var behind = v.routers.filter(function (r) { return r.error !== null || r.lag !== '0' || r.missingChanges || r.digestMismatch; }).length;
  var states = { ready: 0, starting: 0, draining: 0, invalid: 0 };
  var unhealthy = 0;
  v.apps.forEach(function (a) {
    a.instances.forEach(function (i) {
      var s = i.state === null ? 'invalid' : i.state;
      states[s] = (states[s] || 0) + 1;
      if (i.routers.some(function (x) { return x.health !== 'ok' && x.health !== 'unknown'; })) unhealthy++;
    });
  });
  var total = states.ready + states.starting + states.draining + states.invalid;
  return el('div', { class: 'tiles' },
    tile(v.routers.length, 'Routers', behind ? behind + ' behind or disagreeing' : 'all current', v.routers.length === 0 || behind ? 'warn' : 'ok', 'routers'),
    tile(v.apps.length, 'Apps', null, '', 'apps'),
    tile(total, 'Instances', states.ready + ' ready, ' + states.starting + ' starting, ' + states.draining + ' draining' + (states.invalid ? ', ' + states.invalid + ' invalid' : ''), '', 'instances'),
    tile(unhealthy, 'Unhealthy', 'ejected or failing on some router', unhealthy ? 'bad' : 'ok', 'unhealthy'),
    tile(v.rejected.length, 'Rejected', 'records routers refuse', v.rejected.length ? 'bad' : 'ok', 'rejected'),
    tile(v.warnings.length, 'Warnings', 'records with unknown fields', v.warnings.length ? 'warn' : 'ok', 'warnings'));
}

function render(v) {
  current = v;
  metaEl.replaceChildren(
    'prefix ', el('b', null, v.prefix), ' · etcd ', el('b', null, v.endpoints.join(', ')), ' · revision ', el('b', { id: 'revision' }, v.revision));
  main.replaceChildren.apply(main, [tiles(v), routersSection(v), appsSection(v), problemsSection(v)].concat(optionalSections(v)));
  showLive();
}

function showLive() {
  if (!sseOpen) { live.className = 'off'; live.textContent = 'reconnecting to paas-deploy ui'; return; }
  if (current && !current.etcdConnected) { live.className = 'stale'; live.textContent = 'etcd unreachable: as of revision ' + current.revision; return; }
  live.className = 'on'; live.textContent = 'live';
}

setInterval(function () {
  document.querySelectorAll('[data-updated]').forEach(function (n) { n.textContent = ago(n.getAttribute('data-updated')); });
}, 1000);

var events = new EventSource('events');
events.addEventListener('fleet', function (e) { render(JSON.parse(e.data)); });
events.onopen = function () { sseOpen = true; showLive(); };
events.onerror = function () { sseOpen = false; showLive(); };
`;

const HTML_HEAD = '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">';

/** The page, and the Content-Security-Policy that admits exactly its inline style and script. */
export const PAGE_HTML = `${HTML_HEAD}<title>paas fleet</title><style>${STYLE}</style></head>
<body><header><h1>paas fleet</h1><span class="meta" id="meta">connecting…</span><span id="live" class="off">connecting</span></header>
<main id="main"></main>
<script>${SCRIPT}</script></body></html>
`;

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

export const PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');
