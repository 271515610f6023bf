/** Lookups only the tests need: the router finds an instance through its app's pool. */
import type { Backend } from '../../src/table/backend.js';
import type { RoutingTable } from '../../src/table/routing-table.js';

/** The instance named by its key, `<app>/<id>` (Backend.key). */
export function backendByKey(table: RoutingTable, key: string): Backend | undefined {
  const slash = key.indexOf('/');
  return slash < 0 ? undefined : table.instance(key.slice(0, slash), key.slice(slash + 1));
}

/** Every instance, app by app. */
export function allBackends(table: RoutingTable): Backend[] {
  return [...table.pools()].flatMap((pool) => pool.backends);
}
