import { spawn } from 'node:child_process';

/** `promtool check metrics` on an exposition text: its exit code and output (trimmed; '' when clean). */
export function promtool(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', (err) => reject(new Error(`promtool could not run (${err.message}): run scripts/ensure-deploy-tools.sh (make test does)`)));
    child.once('close', (code) => resolve({ code, output: output.trim() }));
    child.stdin.end(text);
  });
}
