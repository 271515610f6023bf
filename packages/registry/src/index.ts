export * from './keys.js';
export * from './kinds.js';
export * from './schema.js';
export * from './parse.js';
export * from './certificate.js';
export * from './etcd/types.js';
export { connectEtcd } from './etcd/connect.js';
export { KeyTakenError } from './etcd/leased-key.js';
