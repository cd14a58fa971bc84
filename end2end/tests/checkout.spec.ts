import { expect, test } from "@playwright/test";
import { seedSession } from "./support";

const jsOn = (name: string) => name === "js";

test("shows a seeded session's summary on a 360 px phone", async ({ page }, info) => {
  const errors: string[] = [];
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  page.on("pageerror", (e) => errors.push(String(e)));

  const s = seedSession();
  const res = await page.goto(s.path);
  expect(res?.status()).toBe(200);

  await expect(page).toHaveTitle(`Pay KES 1,500 to ${s.merchantName} · Malipo`);
  await expect(page.locator(".merchant-name")).toHaveText(s.merchantName);
  await expect(page.locator(".amount")).toHaveText("KES 1,500");
  await expect(page.locator(".description")).toHaveText("Maasai Mara 3-day safari");
  await expect(page.locator(".reference")).toContainText(s.reference);
  await expect(page.locator(".expiry")).toContainText(/Expires in 1[45]:\d\d/);
  await expect(page.locator(".expiry")).toContainText("EAT");
  await expect(page.getByRole("link", { name: /Cancel and go back/ })).toHaveAttribute(
    "href",
    "https://lodge.example/cancelled",
  );
  // Nothing wider than the phone: no sideways scrolling.
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(width).toBeLessThanOrEqual(360);
  // No PIN field anywhere, ever.
  await expect(page.locator("input[type=password]")).toHaveCount(0);

  if (jsOn(info.project.name)) {
    // The countdown island hydrates and ticks.
    await expect(page.locator(".expiry[data-hydrated=true]")).toBeVisible();
    const first = await page.locator(".expiry").innerText();
    await expect.poll(() => page.locator(".expiry").innerText(), { timeout: 5_000 }).not.toBe(first);
  } else {
    // Without JS the server's text stands, and nothing pretends to be live.
    await page.waitForTimeout(1_500);
    await expect(page.locator(".expiry[data-hydrated]")).toHaveCount(0);
  }
  expect(errors).toEqual([]);
});

test("an expired session says so", async ({ page }) => {
  const s = seedSession({ expiresIn: 1 });
  await page.waitForTimeout(1_200);
  const res = await page.goto(s.path);
  expect(res?.status()).toBe(200);
  await expect(page.locator("main")).toHaveAttribute("data-state", "expired");
  await expect(page.getByRole("status")).toContainText("This checkout expired at");
  await expect(page.getByRole("link", { name: /Cancel and go back/ })).toHaveCount(0);
});

test("the countdown reaches expiry on the page without a reload", async ({ page }, info) => {
  test.skip(!jsOn(info.project.name), "needs the island");
  const s = seedSession({ expiresIn: 3 });
  await page.goto(s.path);
  await expect(page.locator(".expiry[data-hydrated=true]")).toBeVisible();
  await expect(page.locator(".expiry")).toContainText("This checkout has expired", { timeout: 8_000 });
});

test("unknown, malformed and stray paths get the 404 page", async ({ page }) => {
  for (const path of ["/pay/cs_000000000000000000000000", "/pay/not-an-id", "/nowhere"]) {
    const res = await page.goto(path);
    expect(res?.status(), path).toBe(404);
    await expect(page.getByRole("heading", { level: 1 })).toHaveText("We can't find this checkout");
    await expect(page.locator("main")).toHaveAttribute("data-page", "not-found");
  }
});

test("amounts follow their currency's minor units", async ({ page }) => {
  const ugx = seedSession({ amount: 75000, currency: "UGX" });
  await page.goto(ugx.path);
  await expect(page.locator(".amount")).toHaveText("UGX 75,000");
  const usd = seedSession({ amount: 125050, currency: "USD" });
  await page.goto(usd.path);
  await expect(page.locator(".amount")).toHaveText("USD 1,250.50");
});
