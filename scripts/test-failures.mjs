#!/usr/bin/env node
// Prints the failed tests of vitest JSON reports, one block each, so the last lines of a CI log
// name what failed even when the log is cut to its tail.
// Usage: node scripts/test-failures.mjs LABEL=report.json [LABEL=report.json ...]
import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';

const MESSAGE_LINES = 6;

let failures = 0;
for (const arg of process.argv.slice(2)) {
  const at = arg.indexOf('=');
  const label = arg.slice(0, at);
  const file = arg.slice(at + 1);
  let report;
  try {
    report = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    console.log(`== ${label}: no report (${err.code ?? err.message}); see the run above`);
    failures++;
    continue;
  }
  for (const suite of report.testResults ?? []) {
    const path = relative(process.cwd(), suite.name);
    const failed = (suite.assertionResults ?? []).filter((t) => t.status === 'failed');
    if (failed.length === 0 && suite.status === 'failed') {
      failures++;
      console.log(`== ${label} FAIL ${path}\n${firstLines(suite.message)}`);
    }
    for (const test of failed) {
      failures++;
      console.log(`== ${label} FAIL ${path} > ${test.fullName}\n${firstLines((test.failureMessages ?? []).join('\n'))}`);
    }
  }
}
if (failures === 0) console.log('== no failed test in the reports');

function firstLines(text = '') {
  return text.split('\n').filter((l) => !l.includes('/node_modules/')).slice(0, MESSAGE_LINES).map((l) => `   ${l}`).join('\n');
}
