// Waits until the server answers /readyz, so a slow start is not a failed test.
export default async function globalSetup(): Promise<void> {
  const base = process.env.MALIPO_E2E_URL ?? "http://127.0.0.1:3000";
  const deadline = Date.now() + 60_000;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${base}/readyz`);
      if (res.ok) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`Malipo at ${base} never became ready: ${last}`);
}
