// The same measurement with Google's official Node.js client (@google-cloud/pubsub).
//   PUBSUB_EMULATOR_HOST=h:p node node_bench.js <messages> <streams>
'use strict';
const {PubSub} = require('@google-cloud/pubsub');

async function main() {
  const n = Number(process.argv[2]);
  const streams = Number(process.argv[3]);
  const pubsub = new PubSub({projectId: 'bench'});
  const id = `node-${streams}-${Date.now()}`;
  const [topic] = await pubsub.createTopic(id);
  await topic.createSubscription(id);
  const payload = Buffer.alloc(1024, 'x');
  let t0 = process.hrtime.bigint();
  const ids = [];
  for (let i = 0; i < n; ++i) ids.push(topic.publishMessage({data: payload}));
  await Promise.all(ids);
  const publishS = Number(process.hrtime.bigint() - t0) / 1e9;

  const sub = pubsub.subscription(id, {streamingOptions: {maxStreams: streams}});
  t0 = process.hrtime.bigint();
  await new Promise((resolve, reject) => {
    let got = 0;
    sub.on('error', reject);
    sub.on('message', (m) => {
      m.ack();
      if (++got === n) resolve();
    });
  });
  const consumeS = Number(process.hrtime.bigint() - t0) / 1e9;
  await sub.close();
  console.log(`node streams=${streams} publish_msgs_per_s=${Math.round(n / publishS)} ` +
              `consume_msgs_per_s=${Math.round(n / consumeS)}`);
  await pubsub.close();
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
