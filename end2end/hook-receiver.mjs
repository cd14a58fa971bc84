// A merchant's webhook receiver for the end-to-end suite: keeps every delivery it gets
// (body and Malipo-Signature header) so a test can check what arrived and verify the
// signature with the secret the dashboard showed. POST /fail/... always answers 500 (an
// endpoint that is down). GET /deliveries lists what arrived. Loopback only.
// Usage: node hook-receiver.mjs PORT
import http from "node:http";

const port = Number(process.argv[2]);
const deliveries = [];

http
  .createServer((req, res) => {
    if (req.method === "GET" && req.url === "/deliveries") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(deliveries));
      return;
    }
    let body = "";
    req.on("data", (c) => {
      body += c;
      if (body.length > 1_000_000) req.destroy();
    });
    req.on("end", () => {
      deliveries.push({ path: req.url, signature: req.headers["malipo-signature"] ?? null, body });
      res.writeHead(req.url.startsWith("/fail") ? 500 : 200);
      res.end();
    });
  })
  .listen(port, "127.0.0.1");
