import { expect, test } from "@playwright/test";
import { readSession, seedSession } from "./support";

// A shopper whose SIM the prompt cannot reach (M-PESA's 1037: the sandbox number
// 0700 001 037 never answers) pays from the M-PESA menu instead: Lipa na M-PESA →
// Pay Bill, with the business number, the account number and the amount the page shows,
// on the sandbox handset. M-PESA asks Malipo first (C2B validation), then tells it
// (C2B confirmation), Malipo checks it with M-PESA (Transaction Status), and the page
// turns green. JavaScript on and off.

const base = process.env.MALIPO_E2E_URL ?? "http://127.0.0.1:3000";

test("a 1037 shopper pays by Paybill", async ({ page, context }, info) => {
  const s = seedSession({ amount: 150000 });
  await page.goto(s.path);
  await page.getByLabel("M-PESA phone number").fill("0700 001 037");
  await page.getByRole("button", { name: /^Pay KES/ }).click();
  await expect(page.getByText("Check your phone and enter your M-PESA PIN")).toBeVisible();
  // No answer: M-PESA gives up on the prompt (1037) after 12 s.
  await expect(page.locator("[data-live=failed]")).toBeVisible({ timeout: 25_000 });
  if (info.project.name !== "js") {
    // Without JavaScript the page came back by itself, the Pay Bill already open.
    await expect(page.locator("[data-paybill=true] details")).toHaveAttribute("open", "");
  } else {
    await page.getByText("Prompt not coming? Pay from the M-PESA menu").click();
  }
  const business = (await page.locator("[data-paybill=business]").textContent())!;
  const account = (await page.locator("[data-paybill=account]").textContent())!;
  await expect(page.locator("[data-paybill=amount]")).toHaveText("KES 1,500");
  expect(business).toBe("174379");

  // The shopper's phone: M-PESA › Lipa na M-PESA › Pay Bill.
  const phone = await context.newPage();
  await phone.goto(`${base}/sandbox/phone/254700001037`);
  await phone.locator("[data-menu=lipa]").click();
  await phone.getByLabel("Business no.").fill(business);
  await phone.getByLabel("Account no.").fill(account);
  await phone.getByLabel("Amount").fill("1500");
  await phone.getByLabel("PIN").fill("2468");
  await phone.getByRole("button", { name: "Send" }).click();
  await expect(phone.locator("[data-sms=paybill]")).toContainText("Confirmed. Ksh1500.00 sent to 174379");
  const receipt = (await phone.locator("[data-sms=paybill]").textContent())!.split(" ")[0];

  // Malipo checks the confirmation with M-PESA (Transaction Status) before the page
  // turns green: a moment. Without JavaScript the shopper reloads until it has.
  if (info.project.name !== "js") {
    await expect(async () => {
      await page.reload();
      await expect(page.locator("[data-live=paid]")).toBeVisible({ timeout: 1_000 });
    }).toPass({ timeout: 15_000 });
  }
  await expect(page.locator("[data-live=paid]")).toBeVisible({ timeout: 15_000 });
  await expect(page.locator(".receipt")).toHaveText(receipt);
  const session = await readSession(s);
  expect(session.payment_status).toBe("paid");
  expect(session.amount_received).toBe(150000);
  expect(session.payment.receipt).toBe(receipt);
});

test("a wrong account number is refused on the phone, and nothing is paid", async ({ page, context }) => {
  const s = seedSession({ amount: 150000 });
  await page.goto(s.path);
  await page.getByText("Prompt not coming? Pay from the M-PESA menu").click();
  const account = (await page.locator("[data-paybill=account]").textContent())!;
  const phone = await context.newPage();
  await phone.goto(`${base}/sandbox/phone/254712000777/paybill`);
  await phone.getByLabel("Business no.").fill("174379");
  // One character off.
  await phone.getByLabel("Account no.").fill(account.slice(0, 6) + (account.endsWith("Z") ? "Y" : "Z"));
  await phone.getByLabel("Amount").fill("1500");
  await phone.getByLabel("PIN").fill("2468");
  await phone.getByRole("button", { name: "Send" }).click();
  await expect(phone.locator("[data-sms=paybill]")).toContainText("is not a valid account for 174379");
  expect((await readSession(s)).amount_received).toBe(0);
});
