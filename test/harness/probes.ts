/**
 * What a test reads of a running router and sample app to see that nothing was left behind:
 *
 *   await metricValue(router.adminUrl, 'router_requests_in_flight');   // 0
 *   await heldAt(app.url, 'my-id');                                     // requests /hold?id=my-id keeps open
 */
import { request } from 'undici';

/** An unlabelled metric's value from a router's /metrics; NaN when it is not there. */
export async function metricValue(adminUrl: string, name: string): Promise<number> {
  const text = await (await request(`${adminUrl}/metrics`)).body.text();
  return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
}

/** How many requests the sample app holds open under `id` (test/apps/sample-app.mjs /hold). */
export async function heldAt(appUrl: string, id: string): Promise<number> {
  return Number((await (await request(`${appUrl}/held?id=${id}`)).body.text()).trim());
}
