/**
 * A small hand-written SVG chart (no dependency): one horizontal bar panel per figure, stacked —
 * throughput (req/s), requests per proxy CPU-second, latency p50/p99 (closed loop), and the
 * fixed-rate p99 each proxy adds. Skipped configurations are listed with their reason.
 */
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759'];

function fmt(v) {
  if (!Number.isFinite(v)) return '–';
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/**
 * panel: { title, unit, series: [name...], rows: [{ label, values: [number|undefined...], note? }] }
 * Returns { svg, height } drawn at vertical offset y.
 */
function panel(p, y, width) {
  const labelW = 150;
  const barMax = width - labelW - 120;
  const barH = 14;
  const rowGap = 6;
  const finite = p.rows.flatMap((r) => r.values).filter((v) => Number.isFinite(v));
  const max = Math.max(1e-9, ...finite.map((v) => Math.abs(v)));
  const parts = [`<text x="10" y="${y + 18}" font-size="14" font-weight="bold">${esc(p.title)}</text>`];
  // Legend on its own line under the title, so it never overlaps a bar's value.
  p.series.forEach((s, i) => {
    const lx = 10 + i * 110;
    parts.push(`<rect x="${lx}" y="${y + 26}" width="10" height="10" fill="${COLORS[i]}"/>`);
    parts.push(`<text x="${lx + 14}" y="${y + 35}" font-size="11">${esc(s)}</text>`);
  });
  let cy = y + 44;
  for (const row of p.rows) {
    const groupH = row.note ? barH : p.series.length * barH;
    parts.push(`<text x="10" y="${cy + groupH / 2 + 4}" font-size="12">${esc(row.label)}</text>`);
    if (row.note) {
      parts.push(`<text x="${labelW}" y="${cy + 11}" font-size="11" fill="#888">${esc(row.note)}</text>`);
    } else {
      row.values.forEach((v, i) => {
        const w = Number.isFinite(v) ? Math.max(1, (Math.abs(v) / max) * barMax) : 0;
        const by = cy + i * barH;
        parts.push(`<rect x="${labelW}" y="${by + 1}" width="${w.toFixed(1)}" height="${barH - 2}" fill="${COLORS[i]}"/>`);
        parts.push(`<text x="${(labelW + w + 4).toFixed(1)}" y="${by + barH - 3}" font-size="11">${esc(fmt(v))}${p.unit ? ` ${esc(p.unit)}` : ''}</text>`);
      });
    }
    cy += groupH + rowGap;
  }
  return { svg: parts.join('\n'), height: cy - y + 14 };
}

export function renderSvg(results, { width = 760 } = {}) {
  const panels = [];
  const proxyRows = results.proxy?.rows ?? [];
  if (proxyRows.length) {
    const rows = (get) => proxyRows.map((r) => (r.skipped ? { label: r.name, note: r.skipped } : { label: r.name, values: get(r) }));
    panels.push({ title: `Throughput, ${results.proxy.connections} connections (${results.proxy.client})`, unit: 'req/s', series: ['req/s'], rows: rows((r) => [r.rps]) });
    panels.push({
      title: 'Requests per CPU-second of the proxy process(es)',
      unit: '',
      series: ['req / proxy CPU-s'],
      rows: rows((r) => [r.reqPerProxyCpuS]).filter((r) => r.label !== 'direct'),
    });
    panels.push({ title: 'Latency under that load (closed loop)', unit: 'ms', series: ['p50', 'p99'], rows: rows((r) => [r.p50Ms, r.p99Ms]) });
  }
  const fixed = results.fixedRate?.rows ?? [];
  if (fixed.length) {
    panels.push({
      title: `Fixed rate ${results.fixedRate.rate} req/s: latency`,
      unit: 'ms',
      series: ['p50', 'p99', 'p99.9'],
      rows: fixed.map((r) => (r.skipped ? { label: r.name, note: r.skipped } : { label: r.name, values: [r.p50Ms, r.p99Ms, r.p999Ms] })),
    });
  }
  let y = 40;
  const body = [];
  for (const p of panels) {
    const out = panel(p, y, width);
    body.push(out.svg);
    y += out.height;
  }
  if (panels.length === 0) {
    body.push(`<text x="10" y="${y + 20}" font-size="12">no proxy configurations ran</text>`);
    y += 40;
  }
  const title = `paas router benchmark — ${results.meta?.date ?? ''}${results.meta?.quick ? ' (quick)' : ''}`;
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" viewBox="0 0 ${width} ${y + 10}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="24" font-size="16" font-weight="bold">${esc(title)}</text>
${body.join('\n')}
</svg>
`;
}
