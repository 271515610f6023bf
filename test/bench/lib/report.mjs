/**
 * Targets and the Markdown report. Targets are ratios against THIS run's HAProxy or absolute
 * limits; each is "met", "missed" or "n/a" (with why) — printed, never an exit code.
 */
const f = (v, d = 2) => (v === undefined || v === null || Number.isNaN(v) ? '–' : !Number.isFinite(v) ? '∞' : Number(v).toFixed(d));
const int = (v) => (v === undefined || !Number.isFinite(v) ? '–' : Math.round(v).toLocaleString('en-US'));

function status(ok) {
  return ok === undefined ? 'n/a' : ok ? '✅ met' : '❌ missed';
}

export function evaluateTargets(results, { fullApps = 100_000 } = {}) {
  const t = [];
  const proxy = results.proxy?.rows ?? [];
  const hap = proxy.find((r) => r.name === 'haproxy' && !r.skipped);
  const rtr = proxy.find((r) => r.name === 'router' && !r.skipped);
  if (results.proxy) {
    const limit = hap?.reqPerProxyCpuS !== undefined ? 0.5 * hap.reqPerProxyCpuS : undefined;
    t.push({
      target: 'router requests per proxy CPU-second ≥ 0.5× HAProxy',
      figure: rtr?.reqPerProxyCpuS !== undefined ? `${int(rtr.reqPerProxyCpuS)} (HAProxy ${hap ? int(hap.reqPerProxyCpuS) : '–'}; ${hap ? f(rtr.reqPerProxyCpuS / hap.reqPerProxyCpuS) : '–'}×)` : '–',
      limit: limit !== undefined ? `≥ ${int(limit)}` : 'needs HAProxy',
      status: status(limit !== undefined && rtr?.reqPerProxyCpuS !== undefined ? rtr.reqPerProxyCpuS >= limit : undefined),
    });
    const rp = proxy.find((r) => r.name === 'router-portable' && !r.skipped);
    if (rp?.reqPerProxyCpuS !== undefined) {
      const vs = [hap ? `${f(rp.reqPerProxyCpuS / hap.reqPerProxyCpuS)}× HAProxy` : undefined, rtr?.reqPerProxyCpuS ? `${f(rp.reqPerProxyCpuS / rtr.reqPerProxyCpuS)}× router` : undefined].filter(Boolean).join(', ');
      t.push({ target: 'router --upstream-client portable (reported, no target)', figure: `${int(rp.reqPerProxyCpuS)}${vs ? ` (${vs})` : ''}`, limit: '–', status: 'reported' });
    }
    const rw = proxy.find((r) => r.name === 'router-workers');
    if (rw && !rw.skipped && limit !== undefined) {
      t.push({ target: 'router --workers 2: same ratio', figure: `${int(rw.reqPerProxyCpuS)} (${f(rw.reqPerProxyCpuS / hap.reqPerProxyCpuS)}×)`, limit: `≥ ${int(limit)}`, status: status(rw.reqPerProxyCpuS >= limit) });
    }
  }
  if (results.fixedRate) {
    const rows = results.fixedRate.rows ?? [];
    const h = rows.find((r) => r.name === 'haproxy' && !r.skipped);
    const r = rows.find((x) => x.name === 'router' && !x.skipped);
    const limit = h?.addedP99Ms !== undefined ? 1.5 * Math.max(0, h.addedP99Ms) + 1 : undefined;
    t.push({
      target: `fixed rate ${results.fixedRate.rate} req/s: router's added p99 ≤ 1.5× HAProxy's + 1 ms`,
      figure: r?.addedP99Ms !== undefined ? `${f(r.addedP99Ms, 3)} ms (HAProxy ${h ? f(h.addedP99Ms, 3) : '–'} ms)` : '–',
      limit: limit !== undefined ? `≤ ${f(limit, 3)} ms` : 'needs HAProxy',
      status: status(limit !== undefined && r?.addedP99Ms !== undefined ? r.addedP99Ms <= limit : undefined),
    });
  }
  if (results.tls && !results.tls.error) t.push(...tlsTargets(results.tls));
  const full = (apps) => (apps >= fullApps ? undefined : `n/a: ${apps} apps in this run`);
  if (results.tunnel?.bulk?.length) {
    for (const direction of ['download', 'upload']) {
      const d = results.tunnel.bulk.find((r) => r.direction === direction && r.name === 'direct');
      const tun = results.tunnel.bulk.find((r) => r.direction === direction && r.name === 'tunnel');
      if (!d || !tun) continue;
      const ratio = tun.mbPerS / d.mbPerS;
      const ref = tunnelReference(results.tunnel.bulk, direction);
      t.push({ target: `1 GiB ${direction} through a tunnel ≥ 70% of direct`, figure: `${int(tun.mbPerS)} MB/s vs ${int(d.mbPerS)} MB/s (${f(ratio)}×)${ref}`, limit: '≥ 0.70×', status: status(ratio >= 0.7) });
    }
  }
  if (results.propagation?.levels?.length) {
    const top = results.propagation.levels[results.propagation.levels.length - 1];
    const why = full(top.apps);
    t.push({
      target: 'put → 200 on both replicas, p99 ≤ 10 ms at 100k apps',
      figure: `${f(top.both.p99)} ms at ${int(top.apps)} apps`,
      limit: '≤ 10 ms',
      status: why ?? status(top.both.p99 <= 10),
    });
  }
  const s = results.scale;
  if (s && !s.error) {
    const why = full(s.apps);
    t.push({ target: 'cold start to /readyz ≤ 2.0 s (100k apps; the target of issue #8)', figure: `${f(s.coldStartMs / 1000)} s${coldStartsNote(s)}`, limit: '≤ 2.0 s', status: why ?? status(s.coldStartMs <= 2000) });
    t.push({ target: 'RSS after load ≤ 350 MB (100k apps)', figure: `${int(s.rssAfterLoadMB)} MB`, limit: '≤ 350 MB', status: why ?? status(s.rssAfterLoadMB <= 350) });
    t.push({
      target: 'RSS peak during a full re-list ≤ 450 MB (100k apps)',
      figure: `${int(s.relist?.peakMB)} MB${s.relist?.error ? ' (re-list not observed)' : ''}`,
      limit: '≤ 450 MB',
      status: why ?? (s.relist?.error ? 'n/a: re-list not observed' : status(s.relist.peakMB <= 450)),
    });
    t.push({
      target: 'one applied change ≤ 1 ms (100k apps; judged on p99)',
      figure: `p99 ~${f(s.change.p99Ms, 3)} ms, p50 ~${f(s.change.p50Ms, 3)} ms, mean ${f(s.change.meanMs, 3)} ms`,
      limit: '≤ 1 ms',
      status: why ?? status(s.change.p99Ms <= 1),
    });
  }
  const c = results.certs;
  if (c && !c.error) {
    const why = c.certs >= 10_000 ? undefined : `n/a: ${c.certs} certificates in this run`;
    t.push({ target: '10k certificates add ≤ 0.3 s to cold start', figure: `${f(c.added.coldStartMs / 1000)} s (${int(c.certs)} certificates)`, limit: '≤ 0.3 s', status: why ?? status(c.added.coldStartMs <= 300) });
    t.push({ target: '10k certificates add ≤ 50 MB RSS', figure: `${f(c.added.rssMB, 1)} MB`, limit: '≤ 50 MB', status: why ?? status(c.added.rssMB <= 50) });
  }
  if (results.lookup?.rows?.length) {
    const big = results.lookup.rows.filter((r) => r.apps === 100_000);
    const worst = big.reduce((a, r) => (r['ns/op (mean)'] > (a?.['ns/op (mean)'] ?? -1) ? r : a), undefined);
    t.push({
      target: 'routing decision ≤ 1 µs at 100k apps (every case, mean)',
      figure: worst ? `worst ${int(worst['ns/op (mean)'])} ns/op (${worst.case})` : '–',
      limit: '≤ 1 000 ns',
      status: status(worst ? worst['ns/op (mean)'] <= 1000 : undefined),
    });
  }
  return t;
}

/** The starts behind a median cold start, when there were several. */
function coldStartsNote(s) {
  return s.coldStarts?.length > 1 ? ` (median of ${s.coldStarts.length} starts: ${s.coldStarts.map((ms) => f(ms / 1000)).join(', ')} s)` : '';
}

/** The first-handshake floors measured in the run (servers with no router), for the target's figure. */
function floorsNote(floors) {
  const done = (floors ?? []).filter((x) => !x.skipped);
  // Like for like: the floors' handshakes naming a host not named before (the uncached row's kind).
  return done.length ? `; with no router on this machine, names not named before: ${done.map((x) => `${x.name} p99 ${f(x.first.p99)} ms`).join(', ')}` : '';
}

/**
 * The same run's reference for a tunnel transfer: what the cheapest encrypted hop kept of direct
 * throughput, behind the router and behind HAProxy (suites/tunnel.mjs); empty when not measured.
 */
function tunnelReference(bulk, direction) {
  const mbs = (name) => bulk.find((r) => r.direction === direction && r.name === name)?.mbPerS;
  const [d, relay, hd, hrelay] = ['direct', 'tls relay', 'haproxy direct', 'haproxy tls relay'].map(mbs);
  if (d === undefined || relay === undefined || hd === undefined || hrelay === undefined) return '';
  return `; reference, an HAProxy TLS relay beside the app: ${f(relay / d)}× behind the router, ${f(hrelay / hd)}× behind HAProxy`;
}

/** Issue #9's TLS targets: ratios against this run's HAProxy, and the 10k-certificate first handshake. */
function tlsTargets(tls) {
  const t = [];
  const row = (name) => tls.rows.find((r) => r.name === name && !r.skipped);
  const hap = row('haproxy');
  const rtr = row('router');
  const ratio = (load, min, what) => {
    const h = hap?.[load]?.reqPerProxyCpuS;
    const r = rtr?.[load]?.reqPerProxyCpuS;
    const limit = h !== undefined && min !== undefined ? min * h : undefined;
    t.push({
      target: min !== undefined ? `TLS: ${what} per proxy CPU-second ≥ ${min}× HAProxy` : `TLS: ${what} per proxy CPU-second vs HAProxy (reported)`,
      figure: r !== undefined ? `${int(r)} (HAProxy ${int(h)}; ${h ? f(r / h) : '–'}×)` : '–',
      limit: min === undefined ? '–' : limit !== undefined ? `≥ ${int(limit)}` : 'needs HAProxy',
      status: min === undefined ? 'reported' : status(limit !== undefined && r !== undefined ? r >= limit : undefined),
    });
  };
  ratio('keepalive', 0.6, 'HTTPS keep-alive requests');
  ratio('handshakes', 0.8, 'full handshakes');
  ratio('h2', undefined, 'HTTP/2 requests (h2load -m 10)');
  const c = tls.certs;
  if (c) {
    const why = c.error ? `n/a: ${c.error}` : c.certs < 10_000 ? `n/a: ${c.certs} certificates in this run` : undefined;
    t.push({
      target: 'TLS: first handshake for an uncached host, 10k certificates, p99 ≤ 5 ms',
      figure: c.first ? `p99 ${f(c.first.p99)} ms, p50 ${f(c.first.p50)} ms (${int(c.certs)} certificates)${floorsNote(c.floors)}` : '–',
      limit: '≤ 5 ms',
      status: why ?? status(c.first.p99 <= 5),
    });
  }
  return t;
}

function tlsSection(tls) {
  const out = ['## TLS termination (issue #9)', ''];
  if (tls.error) return [...out, `**failed:** ${tls.error}`, ''];
  out.push(
    `Same ECDSA P-256 certificate, TLS 1.3, ALPN h2,http/1.1; the same backend; each configuration on the proxy core, clients on the other. ` +
      `Keep-alive: wrk, ${tls.connections} connections, over TLS and then in plain HTTP to the same process (its second listener): the difference in CPU per request is what TLS adds. Handshakes: batches of 100 new h2load clients, each one full TLS 1.3 handshake (no session offered) and one HTTP/1.1 request. ` +
      `HTTP/2: h2load, 5 connections x 10 streams. ${tls.warmSeconds} s warm-up, then ${tls.measureSeconds} s measured, ${tls.rounds ?? 1} round(s) per load with every configuration measured once per round in turn; a cell is its median round (all rounds are in the JSON). ` +
      'node-floor is a bare `http2.createSecureServer` answering by itself (no proxying): what Node costs before any routing or forwarding.',
  );
  out.push('');
  const hap = tls.rows.find((r) => r.name === 'haproxy' && !r.skipped);
  const cell = (r, load, what) => {
    const x = r[load];
    if (!x || x.skipped) return x?.skipped ?? '–';
    const h = hap?.[load]?.reqPerProxyCpuS;
    const v = what === 'rps' ? int(x.rps) : `${int(x.reqPerProxyCpuS)}${h && r !== hap ? ` (${f(x.reqPerProxyCpuS / h)}×)` : ''}`;
    return v + (what !== 'rps' && x.errors ? `, ${x.errors} errors` : '');
  };
  out.push(
    table(
      ['configuration', 'keep-alive req/s', 'keep-alive req per CPU-s', 'same, plain HTTP', 'CPU µs TLS adds per request', 'handshakes/s', 'handshakes per CPU-s', 'h2 req/s', 'h2 req per CPU-s', 'other processes (cores, max)', 'placement'],
      tls.rows.map((r) =>
        r.skipped
          ? [r.name, r.skipped, '', '', '', '', '', '', '', '', '']
          : [
              r.name,
              cell(r, 'keepalive', 'rps'),
              cell(r, 'keepalive', 'cpu'),
              cell(r, 'plain', 'cpu'),
              r.keepalive?.reqPerProxyCpuS && r.plain?.reqPerProxyCpuS ? f(1e6 / r.keepalive.reqPerProxyCpuS - 1e6 / r.plain.reqPerProxyCpuS, 1) : '–',
              cell(r, 'handshakes', 'rps'),
              cell(r, 'handshakes', 'cpu'),
              cell(r, 'h2', 'rps'),
              cell(r, 'h2', 'cpu'),
              f(Math.max(...['keepalive', 'plain', 'handshakes', 'h2'].map((l) => r[l]?.otherCpuCores ?? 0))),
              `cpus ${r.cpus}; ${r.note}`,
            ],
      ),
    ),
  );
  const rtr = tls.rows.find((r) => r.name === 'router' && !r.skipped);
  if (rtr?.handshakes?.resumedHandshakes !== undefined) {
    out.push('');
    out.push(`Router's own count over the measured handshake window: ${int(rtr.handshakes.fullHandshakes)} full handshakes, ${int(rtr.handshakes.resumedHandshakes)} resumed.`);
  }
  const c = tls.certs;
  if (c) {
    out.push('');
    if (c.error) out.push(`**${'10k certificates'} failed:** ${c.error}`);
    else {
      out.push(
        `${int(c.certs)} certificates in etcd (\`certs/\`, one ECDSA P-256 key each); router ready in ${f(c.readyMs / 1000)} s. Connect to end of handshake, one at a time: ${c.samples} hosts never handshaken, each paired with a handshake for a cached host (alternating order, a pause between, after a warm-up; the client on the client core, its own TLS context reused, its GC kept out of the timed spans: ${c.clientGcInSpans ?? '–'} spans overlapped one). ` +
          `Other processes used ${f(c.otherCpuCores)} cores meanwhile` +
          (c.attempts > 1 ? ` (attempt ${c.kept} of ${c.attempts}, the calmest; the others: ${c.allAttempts.filter((_, i) => i !== c.kept - 1).map((a) => `p99 ${f(a.first.p99)} / ${f(a.cached.p99)} ms with ${f(a.otherCpuCores)} cores`).join(', ')})` : '') +
          ':',
      );
      out.push('');
      out.push(
        table(
          ['handshake', 'p50 ms', 'p99 ms', 'max ms'],
          [
            ['first for an uncached host (its context made on the way)', f(c.first.p50), f(c.first.p99), f(c.first.max)],
            ['host already cached', f(c.cached.p50), f(c.cached.p99), f(c.cached.max)],
            ...(c.floors ?? []).flatMap((x) =>
              x.skipped
                ? [[`floor: ${x.name}`, x.skipped, '', '']]
                : [
                    [`floor: ${x.name}, one certificate, no router: a name not named before (${int(x.first.n)} handshakes; other processes ${f(x.otherCpuCores)} cores${x.attempts > 1 ? `, attempt ${x.kept} of ${x.attempts}` : ''})`, f(x.first.p50), f(x.first.p99), f(x.first.max)],
                    [`floor: ${x.name}, the same name each time`, f(x.cached.p50), f(x.cached.p99), f(x.cached.max)],
                  ],
            ),
          ],
        ),
      );
      if (c.floors?.some((x) => !x.skipped)) {
        out.push('');
        out.push(
          'Floors: the same client and method against servers with no router, each with one ECDSA P-256 certificate made in the run, on the proxy core at the same nice: what this machine\'s handshake costs with no router (' +
            c.floors.filter((x) => !x.skipped).map((x) => `${x.name}: ${x.note}`).join('; ') +
            ').',
        );
      }
      if (c.addedP50 !== undefined) {
        out.push('');
        out.push(`What an uncached host adds (its handshake minus its pair's cached one, the median over the pairs: the two saw nearly the same machine): ${f(c.addedP50)} ms.`);
      }
    }
  }
  out.push('');
  return out;
}

function table(headers, rows) {
  return [`| ${headers.join(' | ')} |`, `| ${headers.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export function renderMarkdown(results) {
  const m = results.meta;
  const out = [];
  out.push(`# Router benchmark — ${m.date}${m.quick ? ' (quick mode: short runs, small app counts)' : ''}`);
  out.push('');
  out.push(`Command: \`${m.command}\``);
  out.push(`Machine: ${m.cpus} cores, Node ${m.node}, load average before ${f(m.loadBefore?.load1)} / after ${f(m.loadAfter?.load1)} (1 min). Router: \`${m.routerBin}\`${m.routerWorkers ? ', --workers available' : ', no --workers flag'}.`);
  out.push(`Pinning: ${m.pinning}`);
  out.push('');
  out.push('## Targets');
  out.push('');
  out.push(table(['target', 'this run', 'limit', 'status'], results.targets.map((t) => [t.target, t.figure, t.limit, t.status])));
  out.push('');
  if (results.proxy) {
    const p = results.proxy;
    out.push(`## Proxy throughput and latency`);
    out.push('');
    if (p.error) out.push(`**failed:** ${p.error}`);
    else {
      out.push(`${p.client}, ${p.connections} connections, ${p.warmSeconds} s warm-up then ${p.measureSeconds} s measured, same node:http backend (99-byte body). A run during which other processes used over 0.25 cores was measured again (up to --noise-retries, default 2, more times) and the attempt with the most requests per proxy CPU-second kept (req/s for direct); all attempts are in the JSON.`);
      out.push('');
      out.push(
        table(
          ['configuration', 'req/s', 'p50 ms', 'p99 ms', 'proxy CPU-s', 'req per proxy CPU-s', 'proxy CPU use', 'errors', 'other processes (cores)', 'attempt kept', 'placement'],
          p.rows.map((r) =>
            r.skipped
              ? [r.name, r.skipped, '', '', '', '', '', '', '', '', '']
              : [r.name, int(r.rps), f(r.p50Ms), f(r.p99Ms), r.proxyCpuSeconds !== undefined ? f(r.proxyCpuSeconds) : '–', r.reqPerProxyCpuS !== undefined ? int(r.reqPerProxyCpuS) : '–', r.proxyCpuUtil !== undefined ? `${Math.round(r.proxyCpuUtil * 100)}% of a core` : '–', String(r.errors), f(r.otherCpuCores), r.attempts > 1 ? `${r.kept} of ${r.attempts}` : '1', `cpus ${r.cpus}; ${r.note}`],
          ),
        ),
      );
    }
    out.push('');
  }
  if (results.tls) out.push(...tlsSection(results.tls));
  if (results.fixedRate) {
    const x = results.fixedRate;
    out.push(`## Fixed-rate latency (${x.rate} req/s)`);
    out.push('');
    if (x.error) out.push(`**failed:** ${x.error}`);
    else {
      out.push(`${x.client}, ${x.seconds} s per configuration after a warm-up; "adds" = the same percentile minus backend direct. "generator stall": the longest time the load generator itself was late (its due requests are skipped, not burst); above 5 ms, or with other processes above 0.25 cores, the configuration was measured again (up to --noise-retries, default 2, more times) and the attempt with the lowest p99 kept among those that skipped under 0.5% of their requests; all attempts are in the JSON.`);
      out.push('');
      out.push(
        table(
          ['configuration', 'p50 ms', 'p99 ms', 'p99.9 ms', 'adds p50 ms', 'adds p99 ms', 'adds p99.9 ms', 'achieved req/s', 'errors', 'other processes (cores)', 'generator stall ms', 'attempt kept'],
          x.rows.map((r) =>
            r.skipped
              ? [r.name, r.skipped, '', '', '', '', '', '', '', '', '', '']
              : [r.name, f(r.p50Ms, 3), f(r.p99Ms, 3), f(r.p999Ms, 3), f(r.addedP50Ms, 3), f(r.addedP99Ms, 3), f(r.addedP999Ms, 3), int(r.achievedRps), String(r.errors + r.non2xx), f(r.otherCpuCores), f(r.maxLateMs, 1), r.attempts > 1 ? `${r.kept} of ${r.attempts}` : '1'],
          ),
        ),
      );
    }
    out.push('');
  }
  if (results.propagation) {
    const x = results.propagation;
    out.push('## Propagation: put acknowledged → first 200 through each replica');
    out.push('');
    if (x.error) out.push(`**failed:** ${x.error}`);
    if (x.warmup) out.push(`Each level starts with ${x.warmup} unmeasured puts (warm-up), then the measured ones.`, '');
    if (x.levels?.length) {
      out.push(
        table(
          ['apps', 'puts', 'r1 p50 / p99 / max ms', 'r2 p50 / p99 / max ms', 'both p50 / p99 / max ms', 'timeouts', 'replica cold start s', 'change cost r1 mean ms', 'other processes (cores)'],
          x.levels.map((l) => [
            int(l.apps),
            String(l.iterations),
            `${f(l.r1.p50)} / ${f(l.r1.p99)} / ${f(l.r1.max)}`,
            `${f(l.r2.p50)} / ${f(l.r2.p99)} / ${f(l.r2.max)}`,
            `${f(l.both.p50)} / ${f(l.both.p99)} / ${f(l.both.max)}`,
            String(l.both.timeouts),
            l.coldStartMs.map((v) => f(v / 1000)).join(', '),
            f(l.changeR1.meanMs, 3),
            f(l.otherCpuCores),
          ]),
        ),
      );
    }
    out.push('');
  }
  if (results.scale) {
    const s = results.scale;
    out.push('## Scale');
    out.push('');
    if (s.error) out.push(`**failed:** ${s.error}`);
    else {
      out.push(
        table(
          ['figure', 'value', 'how'],
          [
            ['apps in etcd', int(s.apps), '2 instances each (+ the propagation apps)'],
            ['cold start to /readyz', `${f(s.coldStartMs / 1000)} s${coldStartsNote(s)}`, `spawn → the router's "router ready" line (/readyz 200 from then on, checked once; not polled during the start; the start ran from ${s.startModules ?? 'dist'}); other processes used ${f(s.otherCpuCoresStart)} cores during the median start`],
            ['RSS peak while starting', `${int(s.startPeakMB)} MB`, 'VmRSS sampled every 20 ms from spawn to ready'],
            ['RSS after load', `${int(s.rssAfterLoadMB)} MB`, 'VmRSS 2 s after ready'],
            ['RSS peak during a full re-list', `${int(s.relist.peakMB)} MB${s.relist.error ? ` (${s.relist.error})` : ''}`, `${s.relist.method}; VmRSS every 20 ms until router_table_swaps_total went up${s.relist.seconds ? ` (${f(s.relist.seconds, 1)} s)` : ''}`],
            ['one applied change', `mean ${f(s.change.meanMs, 3)} ms, p50 ~${f(s.change.p50Ms, 3)} ms, p99 ~${f(s.change.p99Ms, 3)} ms`, `router_table_change_duration_seconds over ${s.change.count} app+instance txns (quantiles interpolated in buckets)`],
          ],
        ),
      );
    }
    out.push('');
  }
  if (results.etcdRoll) {
    const r = results.etcdRoll;
    out.push('## Rolling restart of a 3-member etcd cluster');
    out.push('');
    if (r.error) out.push(`**failed:** ${r.error}`);
    else {
      const secs = (xs) => xs.map((x) => f(x)).join(' / ');
      out.push(
        table(
          ['figure', 'value', 'how'],
          [
            ['re-lists per router', r.relistsPerRouter.join(', '), `router_resyncs_total over the roll, ${r.routers} routers × ${r.workers} worker(s), ${int(r.apps)} apps (${int(r.keys)} keys)`],
            ['etcd CPU during the roll', `${secs(r.rollEtcdCpuSeconds)} s`, `per member, utime+stime, ${f(r.rollSeconds, 1)} s: each member stopped, started, waited for, one change applied by both routers`],
            ['etcd CPU for the cold start', `${secs(r.coldStartEtcdCpuSeconds)} s`, `per member, while both routers listed everything (${r.routers * r.workers} full lists, one per worker)`],
            ['change after each restart', r.steps.map((s) => `${s.member} ${int(s.changeAppliedMs)} ms`).join(', '), 'write → applied by both routers'],
            ['watch streams moved', r.steps.map((s) => `${s.member} ${s.watchStreams}`).join(', '), 'watch streams on each member just before its restart (etcd_debugging_mvcc_watch_stream_total)'],
          ],
        ),
      );
    }
    out.push('');
  }
  if (results.certs) {
    const c = results.certs;
    out.push('## Certificate records');
    out.push('');
    if (c.error) out.push(`**failed:** ${c.error}`);
    else {
      out.push(
        table(
          ['figure', 'no certificates', `${int(c.certs)} certificates`, 'added', 'how'],
          [
            ['cold start to /readyz', `${f(c.plain.coldStartMs / 1000)} s`, `${f(c.withCerts.coldStartMs / 1000)} s`, `${f(c.added.coldStartMs / 1000)} s`, `medians of ${c.rounds} alternating starts, ${int(c.apps)} apps under both prefixes; records of ${int(c.recordBytes)} bytes (ECDSA P-256 leaf and key)`],
            ['router CPU until ready', `${f(c.plain.cpuMs / 1000)} s`, `${f(c.withCerts.cpuMs / 1000)} s`, `${f(c.added.cpuMs / 1000)} s`, 'utime + stime of the router process (every thread) at /readyz 200'],
            ['RSS after load', `${int(c.plain.rssMB)} MB`, `${int(c.withCerts.rssMB)} MB`, `${f(c.added.rssMB, 1)} MB`, 'VmRSS 2 s after ready'],
          ],
        ),
      );
    }
    out.push('');
  }
  if (results.tunnel) {
    const x = results.tunnel;
    out.push('## Agent tunnel vs direct');
    out.push('');
    if (x.error) out.push(`**failed:** ${x.error}`);
    else {
      out.push(`The same sample app through one router, as a direct instance and as a tunnel:// instance behind paas-agent. Small requests: ${x.client}, ${x.connections} connections, ${x.measureSeconds} s.`);
      out.push('');
      out.push(table(['path', 'req/s', 'p50 ms', 'p99 ms', 'req per router CPU-s', 'agent CPU-s', 'errors'], x.small.map((r) => [r.name, int(r.rps), f(r.p50Ms), f(r.p99Ms), int(r.reqPerRouterCpuS), r.agentCpuS !== undefined ? f(r.agentCpuS) : '–', String(r.errors)])));
      out.push('');
      const referenced = x.bulk.some((r) => r.name === 'haproxy tls relay');
      out.push(referenced
        ? 'The 1 GiB transfers also go along the reference paths: the app behind HAProxy terminating TLS beside it (tcp mode; the cheapest encrypted hop), reached by the router as an https:// instance (`tls relay`) and by HAProxy as the front proxy in the router\'s place (`haproxy direct`, `haproxy tls relay`). Proxy: the router or the front HAProxy; relay: the agent or the TLS relay.'
        : 'The 1 GiB transfers, without the encrypted-hop reference (no HAProxy). Proxy: the router; relay: the agent.');
      out.push('');
      out.push(table(['1 GiB', 'path', 'seconds', 'MB/s', 'proxy CPU-s', 'relay CPU-s', 'proxy peak RSS MB', 'relay peak RSS MB'], x.bulk.map((r) => [r.direction, r.name, f(r.seconds), int(r.mbPerS), f(r.proxyCpuS), r.relayCpuS !== undefined ? f(r.relayCpuS) : '–', int(r.proxyPeakRssMB), r.relayPeakRssMB !== undefined ? int(r.relayPeakRssMB) : '–'])));
      if (x.bulkRounds?.length) {
        // Each round's ratio: the transfers of a round saw nearly the same machine.
        const perRound = (direction, name, base) => {
          const of = (n) => x.bulkRounds.filter((r) => r.direction === direction && r.name === n);
          return of(name).map((t, i) => f(t.mbPerS / of(base)[i].mbPerS)).join(', ');
        };
        out.push('');
        out.push(`Transfers in turns, ${x.rounds} round(s), each moving 1 GiB each way along every path; a row is its median round. By round:`);
        out.push('');
        out.push(referenced
          ? table(['1 GiB', 'tunnel ÷ direct', 'tls relay ÷ direct', 'haproxy tls relay ÷ haproxy direct'], ['download', 'upload'].map((d) => [d, perRound(d, 'tunnel', 'direct'), perRound(d, 'tls relay', 'direct'), perRound(d, 'haproxy tls relay', 'haproxy direct')]))
          : table(['1 GiB', 'tunnel ÷ direct'], ['download', 'upload'].map((d) => [d, perRound(d, 'tunnel', 'direct')])));
      }
      out.push('');
      out.push(table(['one 256 MiB HTTP/2 stream over TLS, loopback', 'MB/s'], x.windows.map((r) => [r.name, int(r.mbPerS)])));
    }
    out.push('');
  }
  if (results.lookup) {
    const l = results.lookup;
    out.push('## Routing decision alone (test/bench/lookup.bench.ts)');
    out.push('');
    if (l.error) out.push(`**failed:** ${l.error}`);
    else out.push(table(['apps', 'case', 'ns/op (mean)', 'ns/op (p99 of batches)'], l.rows.map((r) => [int(r.apps), r.case, int(r['ns/op (mean)']), int(r['ns/op (p99 of batches)'])])));
    out.push('');
  }
  if (m.notes?.length) {
    out.push('## Notes');
    out.push('');
    for (const n of m.notes) out.push(`- ${n}`);
    out.push('');
  }
  return out.join('\n');
}
