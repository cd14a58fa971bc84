import AxeBuilder from "@axe-core/playwright";
import { expect, test, type Page } from "@playwright/test";
import { approveOnHandset, seedSession } from "./support";

// WCAG 2.2 AA, checked with axe-core on every state of the shopper's pages (open, with a
// trip and parts, waiting for the PIN, failed, paid, expired, the receipt, in Kiswahili),
// and the page used at 320 CSS px wide and with text at 200 %: nothing cut off, nothing
// to scroll sideways, the pay button reachable. axe runs in the page, so with
// JavaScript on only; the layout checks run in both projects.

const base = process.env.MALIPO_E2E_URL ?? "http://127.0.0.1:3000";
const WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"];

async function axe(page: Page, what: string) {
  const results = await new AxeBuilder({ page }).withTags(WCAG).analyze();
  const found = results.violations.map(
    (v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`,
  );
  expect(found, `${what}: accessibility violations`).toEqual([]);
  // The rules ran on this page (colour contrast, labels, names, language, …).
  const ran = results.passes.map((p) => p.id);
  expect(ran, what).toEqual(expect.arrayContaining(["html-has-lang", "document-title"]));
  expect(ran.length, `${what}: rules that passed`).toBeGreaterThanOrEqual(5);
  // Nothing left for a person to judge on contrast (axe could tell every text's).
  const unsure = results.incomplete.filter((i) => i.id === "color-contrast");
  expect(
    unsure.map((i) => i.nodes.map((n) => `${n.target.join(" ")}: ${n.any.map((a) => a.message).join("; ")}`)),
    `${what}: contrast axe could not decide`,
  ).toEqual([]);
}

/** A session with a trip, priced above M-PESA's KES 250,000 (so the part field shows). */
async function tripSession(): Promise<{ path: string }> {
  const s = seedSession();
  const res = await fetch(`${base}/v1/checkout/sessions`, {
    method: "POST",
    headers: { authorization: `Bearer ${s.key}`, "content-type": "application/json" },
    body: JSON.stringify({
      amount: 40_000_000,
      currency: "KES",
      reference: "SAFARI-9",
      description: "Serengeti and Ngorongoro, 6 days",
      success_url: "https://lodge.example/paid",
      cancel_url: "https://lodge.example/cancelled",
      line_items: [
        { description: "Flight", date: "2026-12-20", from: "NBO", to: "JRO" },
        { description: "Lodge, 5 nights", date: "2026-12-20" },
      ],
      travelers: { count: 2, lead_name: "Amina Njoroge" },
    }),
  });
  expect(res.ok).toBeTruthy();
  const body: any = await res.json();
  return { path: new URL(body.url).pathname };
}

/** Nothing wider than the viewport: no sideways scrolling, no cut-off text. */
async function fits(page: Page, what: string) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: document.documentElement.clientWidth,
  }));
  expect(scroll, `${what}: scrolls sideways (${scroll} > ${width})`).toBeLessThanOrEqual(width);
}

test("every state of the checkout page passes axe (WCAG 2.2 AA)", async ({ page }, info) => {
  test.skip(info.project.name !== "js", "axe runs in the page: JavaScript on");
  const trip = await tripSession();
  await page.goto(trip.path);
  await axe(page, "open, with a trip and the part field");
  await page.getByText("Prompt not coming? Pay from the M-PESA menu").click();
  await page.getByText("Ask someone to pay").click();
  await axe(page, "open, the Pay Bill and sharing opened");
  await page.goto(`${trip.path}?lang=sw`);
  await axe(page, "in Kiswahili");

  const s = seedSession();
  // Back to English (the switcher's choice is remembered).
  await page.goto(`${s.path}?lang=en`);
  await page.getByLabel("M-PESA phone number").fill("0700 000 001");
  await page.getByRole("button", { name: /^Pay KES/ }).click();
  await expect(page.locator("[data-live=waiting]")).toBeVisible();
  await axe(page, "waiting for the PIN");
  await expect(page.locator("[data-live=failed]")).toBeVisible({ timeout: 15_000 });
  await axe(page, "failed (insufficient funds)");

  await page.getByLabel("M-PESA phone number").fill("0712 000 901");
  await page.getByRole("button", { name: "Send the prompt again" }).click();
  await approveOnHandset("254712000901", s.reference);
  await expect(page.locator("[data-live=paid]")).toBeVisible({ timeout: 15_000 });
  await axe(page, "paid");
  await page.goto(`${s.path}/receipt`);
  await axe(page, "the receipt");

  const expired = seedSession({ expiresIn: 1 });
  await new Promise((r) => setTimeout(r, 1_500));
  await page.goto(expired.path);
  await axe(page, "expired");
  await page.goto("/pay/cs_NoSuchSession00000000000");
  await axe(page, "not found");
});

test("the page is usable at 320 px wide and with text at 200 %", async ({ page }) => {
  const trip = await tripSession();
  await page.setViewportSize({ width: 320, height: 568 });
  await page.goto(trip.path);
  await fits(page, "320 px");
  await expect(page.getByLabel("M-PESA phone number")).toBeVisible();
  await page.getByLabel("M-PESA phone number").scrollIntoViewIfNeeded();
  await page.getByRole("button", { name: "Pay now" }).scrollIntoViewIfNeeded();
  await expect(page.getByRole("button", { name: "Pay now" })).toBeInViewport();

  // 200 % zoom of a 640 px wide window lays the page out in 320 CSS px, as above. Text
  // alone at 200 % (the browser's text-size setting, which the page follows: its sizes
  // are relative to it), in a 360 px phone:
  await page.setViewportSize({ width: 360, height: 640 });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Page.setFontSizes", { fontSizes: { standard: 32 } });
  await page.goto(trip.path);
  const size = await page.evaluate(() => getComputedStyle(document.body).fontSize);
  expect(size).toBe("32px");
  await fits(page, "text at 200 %");
  await page.getByRole("button", { name: "Pay now" }).scrollIntoViewIfNeeded();
  await expect(page.getByRole("button", { name: "Pay now" })).toBeInViewport();
});
