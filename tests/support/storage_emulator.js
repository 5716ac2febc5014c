// Starts the Cloud Storage emulator inside the npm package firebase-tools (pinned in
// package-lock.json) on 127.0.0.1:<port>, offline. `firebase emulators:start` wants Java 21
// and a download; the JSON API needs neither: only Firebase security rules run on Java, so
// the rules runtime is replaced by a no-op (requests authorised as owner bypass rules).
// Usage: node tests/support/storage_emulator.js <port> [project]
"use strict";
const path = require("path");

const port = Number(process.argv[2]);
const project = process.argv[3] || "dataflow-test";
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: storage_emulator.js <port> [project]");
  process.exit(2);
}
// Objects live in memory and in a temp dir that the next start resets, so a test server
// has nothing to save: exit at once (the emulator's own stop can wait on open
// keep-alive connections for a long time).
const stop = () => process.exit(0);
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

const root = path.resolve(__dirname, "..", "..");
const lib = path.join(root, "node_modules/firebase-tools/lib/emulator");
const { StorageEmulator } = require(path.join(lib, "storage/index.js"));
const { EmulatorRegistry } = require(path.join(lib, "registry.js"));

async function main() {
  const emulator = new StorageEmulator({ projectId: project, host: "127.0.0.1", port,
                                         auto_download: false });
  emulator._rulesRuntime.start = async () => {};
  emulator._rulesRuntime.stop = async () => {};
  emulator._rulesManager = { start: async () => {}, stop: async () => {},
                             getRuleset: () => undefined, close: async () => {} };
  // The registry starts it and tells its metadata code our host and port (object URLs).
  await EmulatorRegistry.start(emulator);
  console.log(`storage emulator listening on 127.0.0.1:${port}`);
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
