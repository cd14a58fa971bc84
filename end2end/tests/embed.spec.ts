import { expect, test } from "@playwright/test";
import { approveOnHandset } from "./support";

// The sandbox merchant site ("Maasai Mara Safaris") on its own origin embeds the
// checkout served from Malipo's origin. `localhost` and `127.0.0.1` are different
// origins for the browser: the merchant allows only its 127.0.0.1 origin.
const merchant = process.env.MALIPO_E2E_MERCHANT_URL ?? "http://127.0.0.1:3001";
const elsewhere = merchant.replace("127.0.0.1", "localhost");
const shop = `${merchant}/sandbox/merchant`;

test.beforeEach(({}, info) => {
  const redirectFlow = info.titlePath.includes("without JavaScript");
  test.skip(info.project.name !== "js" && !redirectFlow, "checkout.js needs JavaScript");
});

test("the merchant's page embeds the checkout, the shopper pays, the webhook confirms", async ({ page }) => {
  await page.goto(shop);
  await expect(page.getByRole("heading", { name: "Maasai Mara 3-day safari — Book & pay" })).toBeVisible();
  await page.getByRole("button", { name: "Book & pay", exact: true }).click();
  await expect(page.locator("#booking-status")).toHaveAttribute("data-state", "waiting");
  const reference = (await page.locator("#booking-ref").textContent())!.trim();
  expect(reference).toMatch(/^SAF-/);

  // The modal iframe shows Malipo's page (another origin), full screen on a phone.
  const frameEl = page.locator("iframe[data-malipo=modal]");
  await expect(frameEl).toBeVisible();
  const box = (await frameEl.boundingBox())!;
  expect(box.width).toBeGreaterThanOrEqual(355);
  expect(new URL((await frameEl.getAttribute("src"))!).origin).not.toBe(merchant);
  const checkout = page.frameLocator("iframe[data-malipo=modal]");
  await expect(checkout.locator("main[data-page=checkout]")).toBeVisible();
  await expect(checkout.locator(".amount")).toHaveText("KES 45,000");

  await checkout.getByLabel("M-PESA phone number").fill("0722 000 111");
  await checkout.getByRole("button", { name: /^Pay KES/ }).click();
  await expect(checkout.getByText("Check your phone and enter your M-PESA PIN")).toBeVisible();
  await approveOnHandset("254722000111", reference);

  await expect(checkout.locator("[data-live=paid]")).toBeVisible({ timeout: 10_000 });
  // onSuccess fired (once), and the booking shows paid only after the verified webhook.
  await expect(page.locator("#success-calls")).toHaveText("1");
  await expect(page.locator("#booking-status")).toHaveAttribute("data-state", "paid", { timeout: 15_000 });
  await expect(page.locator("#booking-status")).toContainText(`booking ${reference} confirmed (webhook evt_`);
  // The framed page did not navigate itself to success_url: the merchant page moves on.
  expect(new URL(page.url()).origin).toBe(merchant);
});

test("the checkout mounts inline and grows to its content", async ({ page }) => {
  await page.goto(shop);
  await page.getByRole("button", { name: "Book & pay on this page" }).click();
  const frameEl = page.locator("#inline iframe[data-malipo=inline]");
  await expect(frameEl).toBeVisible();
  await expect(page.frameLocator("#inline iframe").locator("main[data-page=checkout]")).toBeVisible();
  await expect.poll(async () => (await frameEl.boundingBox())!.height).not.toBe(560);
});

test("a page on an origin the merchant did not allow cannot frame the checkout", async ({ page }) => {
  const refused: string[] = [];
  page.on("console", (m) => {
    if (m.text().includes("frame-ancestors")) refused.push(m.text());
  });
  await page.goto(`${elsewhere}/sandbox/merchant`);
  await page.getByRole("button", { name: "Book & pay", exact: true }).click();
  await expect(page.locator("iframe[data-malipo=modal]")).toBeAttached();
  // The browser refuses the frame by CSP: the checkout never renders in it.
  await expect.poll(() => refused.length, { timeout: 10_000 }).toBeGreaterThan(0);
  expect(refused[0]).toContain("frame-ancestors");
  await expect(page.frameLocator("iframe[data-malipo=modal]").locator("main[data-page=checkout]")).toHaveCount(0);
});

test("a forged success message from another origin is ignored", async ({ page }) => {
  await page.goto(shop);
  await page.getByRole("button", { name: "Book & pay", exact: true }).click();
  await expect(page.locator("#booking-status")).toHaveAttribute("data-state", "waiting");
  const src = (await page.locator("iframe[data-malipo=modal]").getAttribute("src"))!;
  const sessionId = new URL(src).pathname.split("/").pop()!;
  await expect(page.frameLocator("iframe[data-malipo=modal]").locator("main[data-page=checkout]")).toBeVisible();

  // From the merchant's own window, and from a frame on another origin.
  await page.evaluate((id) => window.postMessage({ source: "malipo", type: "success", sessionId: id }, "*"), sessionId);
  await page.evaluate((url) => {
    const f = document.createElement("iframe");
    f.id = "forger";
    f.src = url;
    document.body.appendChild(f);
  }, `${elsewhere}/sandbox/merchant/forge?session=${sessionId}`);
  await expect.poll(async () => page.frame({ url: /\/forge/ })?.title()).toBe("forged");
  await page.waitForTimeout(500);
  await expect(page.locator("#success-calls")).toHaveText("0");
  await expect(page.locator("#booking-status")).toHaveAttribute("data-state", "waiting");
});

test.describe("without JavaScript", () => {
  test.beforeEach(({}, info) => {
    test.skip(info.project.name !== "no-js", "the redirect flow is what no-JS shoppers get");
  });

  test("the merchant's form sends the shopper to the hosted page and back, confirmed by the API", async ({ page }) => {
    await page.goto(shop);
    await page.getByRole("button", { name: "Book & pay", exact: true }).click();
    // On Malipo's own page now (the redirect flow), for this booking.
    await expect(page.locator("main[data-page=checkout]")).toBeVisible();
    const reference = (await page.locator(".reference").textContent())!.replace("Reference", "").trim();
    expect(reference).toMatch(/^SAF-/);
    const sessionId = new URL(page.url()).pathname.split("/").pop()!;
    await page.getByLabel("M-PESA phone number").fill("0722 000 222");
    await page.getByRole("button", { name: /^Pay KES/ }).click();
    await approveOnHandset("254722000222", reference);
    // The page refreshes itself, shows paid, then goes on to success_url with the id.
    await page.waitForURL(`${merchant}/sandbox/merchant/return?session=${sessionId}`, { timeout: 20_000 });
    await expect(page.locator("#return-status")).toHaveAttribute("data-paid", "true");
    await expect(page.locator("#return-status")).toContainText("your safari is booked");
  });
});
