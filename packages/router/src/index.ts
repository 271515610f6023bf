export { startRouter, type RunningRouter } from './router.js';
export { parseConfig, type RouterConfig } from './config.js';
export { RoutingTable } from './table/routing-table.js';
