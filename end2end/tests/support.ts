import { execFileSync } from "node:child_process";

// Seeds through the real `malipo` CLI against the database the server under test uses.
function malipo(args: string[]): any {
  const bin = process.env.MALIPO_BIN;
  if (!bin) throw new Error("MALIPO_BIN is not set: run the suite through scripts/test");
  const out = execFileSync(bin, [...args, "--json"], {
    env: { ...process.env, MALIPO_LOG: "warn" },
    encoding: "utf8",
  });
  return JSON.parse(out);
}

export interface Seeded {
  merchantName: string;
  /** The merchant's test secret key, for reading the session through the API. */
  key: string;
  sessionId: string;
  path: string;
  /** Unique per session: the STK prompt shows it as the account reference. */
  reference: string;
}

let counter = 0;

/** A merchant with its test secret key, through the CLI (as an operator would). */
export function createMerchant(name: string): { id: string; key: string } {
  const m = malipo(["merchant", "create", "--name", name]);
  return { id: m.id, key: m.test_secret_key };
}

/** A fresh merchant and an open session of theirs. */
export function seedSession(
  opts: { amount?: number; currency?: string; expiresIn?: number; successUrl?: string } = {},
): Seeded {
  counter += 1;
  const reference = `E${process.pid % 100000}-${counter}`.slice(0, 12);
  const merchantName = `Mara Camp ${process.pid}-${counter}`;
  const merchant = malipo(["merchant", "create", "--name", merchantName]);
  const session = malipo([
    "session", "create",
    "--merchant", merchant.id,
    "--amount", String(opts.amount ?? 150000),
    "--currency", opts.currency ?? "KES",
    "--description", "Maasai Mara 3-day safari",
    "--reference", reference,
    "--success-url", opts.successUrl ?? "https://lodge.example/paid",
    "--cancel-url", "https://lodge.example/cancelled",
    "--expires-in", String(opts.expiresIn ?? 900),
  ]);
  return {
    merchantName,
    key: merchant.test_secret_key,
    sessionId: session.id,
    path: new URL(session.url).pathname,
    reference,
  };
}

const base = process.env.MALIPO_E2E_URL ?? "http://127.0.0.1:3000";

/** The session as the merchant's server reads it: `GET /v1/checkout/sessions/{id}`. */
export async function readSession(s: Seeded): Promise<any> {
  const res = await fetch(`${base}/v1/checkout/sessions/${s.sessionId}`, {
    headers: { authorization: `Bearer ${s.key}` },
  });
  if (!res.ok) throw new Error(`reading the session: HTTP ${res.status}`);
  return res.json();
}

/** Answers the prompt for `reference` on the sandbox handset, as the shopper would (a PIN
 *  of the operator's length). */
export async function approveOnHandset(phone: string, reference: string, waitMs = 15_000): Promise<string> {
  const deadline = Date.now() + waitMs;
  // Vodacom's TransactionReference takes letters and digits only: Malipo drops the rest.
  const plain = (s: string) => String(s).replace(/[^0-9A-Za-z]/g, "");
  while (Date.now() < deadline) {
    const res = await fetch(`${base}/sandbox/phones/${phone}/prompts`);
    const body: any = await res.json();
    // Tigo has no account reference: Malipo's Remarks end with it.
    const prompt = body.prompts.find(
      (p: any) =>
        p.account_reference === reference ||
        plain(p.account_reference) === plain(reference) ||
        String(p.merchant).endsWith(` ${reference}`),
    );
    if (prompt) {
      const accepted = await fetch(`${base}/sandbox/phones/${phone}/prompts/${prompt.id}/accept`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ pin: "24680".slice(0, prompt.pin_digits) }),
      });
      if (!accepted.ok) throw new Error(`accept failed: ${accepted.status}`);
      return ((await accepted.json()) as any).receipt;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no prompt for ${reference} on ${phone}`);
}
