// The image's HEALTHCHECK: exits 0 when the router's /readyz answers 200, 1 otherwise (the image
// has no curl). It asks the admin listener the router was given in ROUTER_ADMIN; a wildcard host
// there is asked on loopback.
const admin = process.env.ROUTER_ADMIN ?? '127.0.0.1:9090';
const colon = admin.lastIndexOf(':');
const host = admin.slice(0, colon);
const loopback = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host;
try {
  const res = await fetch(`http://${loopback}:${admin.slice(colon + 1)}/readyz`, { signal: AbortSignal.timeout(2000) });
  process.exit(res.status === 200 ? 0 : 1);
} catch {
  process.exit(1);
}
