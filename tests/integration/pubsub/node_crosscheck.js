// Cross-check with Google's official Node.js client (@google-cloud/pubsub, pinned in
// package-lock.json) against the emulator in PUBSUB_EMULATOR_HOST.
//   node node_crosscheck.js read <project> <subscription> <count>
//     receives <count> messages, acks them, prints one JSON line each:
//     {"id", "data" (base64), "attributes", "orderingKey"}
//   node node_crosscheck.js publish <project> <topic> <count>
//     publishes <count> messages "node-<i>" with attribute from=node, prints their ids.
// Exits non-zero with a message on stderr on any error or after 30 s.
'use strict';
const {PubSub} = require('@google-cloud/pubsub');

async function main() {
  const [mode, project, name, countText] = process.argv.slice(2);
  const count = Number(countText);
  if (!mode || !project || !name || !(count > 0)) {
    throw new Error('usage: node_crosscheck.js read|publish <project> <name> <count>');
  }
  if (!process.env.PUBSUB_EMULATOR_HOST) throw new Error('PUBSUB_EMULATOR_HOST is not set');
  const pubsub = new PubSub({projectId: project});
  const timer = setTimeout(() => {
    console.error(`timeout: ${mode} ${name}`);
    process.exit(3);
  }, 30000);
  if (mode === 'publish') {
    const topic = pubsub.topic(name);
    const ids = await Promise.all(
        Array.from({length: count}, (_, i) => topic.publishMessage(
            {data: Buffer.from(`node-${i}`), attributes: {from: 'node', index: String(i)}})));
    for (const id of ids) console.log(id);
    await topic.flush();
  } else if (mode === 'read') {
    const sub = pubsub.subscription(name);
    const seen = new Map();
    await new Promise((resolve, reject) => {
      sub.on('error', reject);
      sub.on('message', (m) => {
        m.ack();
        if (!seen.has(m.id)) {
          seen.set(m.id, {
            id: m.id,
            data: m.data.toString('base64'),
            attributes: m.attributes,
            orderingKey: m.orderingKey || '',
          });
        }
        if (seen.size >= count) resolve();
      });
    });
    await sub.close();
    for (const v of seen.values()) console.log(JSON.stringify(v));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  clearTimeout(timer);
  await pubsub.close();
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(2);
});
