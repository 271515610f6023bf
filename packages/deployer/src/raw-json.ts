/**
 * A stored value as the JSON object it holds, whether or not it is a valid record: writes that
 * change a few fields keep the operator's other fields (and a rollback restores the value as it was).
 */
export function jsonObject(value: Buffer): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(value.toString('utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
