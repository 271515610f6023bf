export * from './keys.js';
export * from './kinds.js';
export * from './schema.js';
export * from './parse.js';
export * from './etcd/types.js';
export { connectEtcd } from './etcd/connect.js';
export { KeyTakenError } from './etcd/leased-key.js';
export { describeAccessRefused, EtcdSecurityError, loadEtcdSecurity, PASSWORD_ENV, type EtcdSecurity, type EtcdSecurityInput, type Given } from './etcd/security.js';
export { FIRST_PAGE_SIZE } from './etcd/list.js';
