/** The real etcdctl binary against any endpoints, as an operator would run it. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export async function etcdctl(endpoints: string[], args: string[]): Promise<string> {
  const { stdout } = await run('etcdctl', [`--endpoints=${endpoints.join(',')}`, ...args], {
    env: { ...process.env, ETCDCTL_API: '3' },
    timeout: 15_000,
  });
  return stdout.trim();
}
