/**
 * The fleet's ACME account: one per directory URL, its key in etcd
 * (`acme/accounts/<sha256(directory) prefix>`), encrypted with the first key of the key ring
 * when the routers have one. The first router to need it creates it only if absent; a router
 * that loses that race reads the winner's, so the fleet is one ACME client with one account.
 */
import { createHash } from 'node:crypto';
import { decryptKey, encryptKey, parseAcmeAccount, type AcmeAccount, type Etcd, type KeyLayout, type KeyRing } from '@paas/registry';
import { crypto as acmeCrypto } from 'acme-client';

export interface AccountOptions {
  etcd: Etcd;
  layout: KeyLayout;
  directory: string;
  email: string;
  keyRing: KeyRing;
}

/** The account key's id under acme/accounts/: directory URLs are not key names. */
export function directoryId(directory: string): string {
  return createHash('sha256').update(directory).digest('hex').slice(0, 32);
}

function accountKey(rec: AcmeAccount, keyRing: KeyRing, key: string): string {
  if (rec.key !== undefined) return rec.key;
  const plain = decryptKey(rec.keyEnc!, keyRing);
  if (!plain.ok) throw new Error(`${key}: ${plain.error}`);
  return plain.value;
}

/** The account's private key (PEM), created and stored when the fleet has none for this directory. */
export async function loadAccountKey(opts: AccountOptions): Promise<string> {
  const key = opts.layout.acmeAccount(directoryId(opts.directory));
  for (;;) {
    const entry = await opts.etcd.get(key);
    if (entry !== undefined) {
      const rec = parseAcmeAccount(entry.value);
      if (!rec.ok) throw new Error(`${key}: ${rec.error}`);
      return accountKey(rec.value, opts.keyRing, key);
    }
    const pem = (await acmeCrypto.createPrivateEcdsaKey('P-256')).toString();
    const firstKid = opts.keyRing.keys().next();
    const rec: AcmeAccount = firstKid.done
      ? { directory: opts.directory, email: opts.email, key: pem }
      : { directory: opts.directory, email: opts.email, keyEnc: encryptKey(pem, firstKid.value, opts.keyRing) };
    const created = await opts.etcd.txn([{ key, target: 'create', op: '=', value: 0n }], [{ put: key, value: JSON.stringify(rec) }]);
    if (created.succeeded) return pem;
    // Another router created it first: use that one (read again above).
  }
}
