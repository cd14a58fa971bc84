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
  sessionId: string;
  path: string;
}

let counter = 0;

/** A fresh merchant and an open session of theirs. */
export function seedSession(opts: { amount?: number; currency?: string; expiresIn?: number } = {}): Seeded {
  counter += 1;
  const merchantName = `Mara Camp ${process.pid}-${counter}`;
  const merchant = malipo(["merchant", "create", "--name", merchantName]);
  const session = malipo([
    "session", "create",
    "--merchant", merchant.id,
    "--amount", String(opts.amount ?? 150000),
    "--currency", opts.currency ?? "KES",
    "--description", "Maasai Mara 3-day safari",
    "--reference", "MARA-0042",
    "--cancel-url", "https://lodge.example/cancelled",
    "--expires-in", String(opts.expiresIn ?? 900),
  ]);
  return { merchantName, sessionId: session.id, path: new URL(session.url).pathname };
}
