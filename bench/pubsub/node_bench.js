// The same measurement with Google's official Node.js client (@google-cloud/pubsub), printing
// the same fields as emulator_bench (rates, own CPU per message, emulator cores per phase).
//   PUBSUB_EMULATOR_HOST=h:p [DATAFLOW_BENCH_EMULATOR_PIDS="p1 p2"] node node_bench.js <messages> <streams>
'use strict';
const fs = require('fs');
const {PubSub} = require('@google-cloud/pubsub');

// utime + stime of the emulator's processes (fields 14 and 15 of /proc/PID/stat), seconds.
function emulatorCpuSeconds() {
  const pids = (process.env.DATAFLOW_BENCH_EMULATOR_PIDS || '').split(/\s+/).filter(Boolean);
  let ticks = 0;
  for (const pid of pids) {
    let line;
    try {
      line = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const fields = line.slice(line.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);  // fields 14 and 15 overall
  }
  return ticks / 100;  // USER_HZ is 100 on Linux
}

function startPhase() {
  return {wall: process.hrtime.bigint(), cpu: process.cpuUsage(), emulator: emulatorCpuSeconds()};
}
function endPhase(p) {
  const cpu = process.cpuUsage(p.cpu);
  return {
    wall: Number(process.hrtime.bigint() - p.wall) / 1e9,
    cpu: (cpu.user + cpu.system) / 1e6,
    emulator: emulatorCpuSeconds() - p.emulator,
  };
}

async function main() {
  const n = Number(process.argv[2]);
  const streams = Number(process.argv[3]);
  const pubsub = new PubSub({projectId: 'bench'});
  const id = `node-${streams}-${Date.now()}`;
  const [topic] = await pubsub.createTopic(id);
  await topic.createSubscription(id);
  const payload = Buffer.alloc(1024, 'x');
  let phase = startPhase();
  const ids = [];
  for (let i = 0; i < n; ++i) ids.push(topic.publishMessage({data: payload}));
  await Promise.all(ids);
  const publish = endPhase(phase);

  const sub = pubsub.subscription(id, {streamingOptions: {maxStreams: streams}});
  phase = startPhase();
  await new Promise((resolve, reject) => {
    let got = 0;
    sub.on('error', reject);
    sub.on('message', (m) => {
      m.ack();
      if (++got === n) resolve();
    });
  });
  const consume = endPhase(phase);
  await sub.close();
  const f = (x, d) => x.toFixed(d);
  console.log(`node streams=${streams} publish_msgs_per_s=${f(n / publish.wall, 0)} ` +
              `consume_msgs_per_s=${f(n / consume.wall, 0)} ` +
              `publish_cpu_us_per_msg=${f(publish.cpu * 1e6 / n, 1)} ` +
              `consume_cpu_us_per_msg=${f(consume.cpu * 1e6 / n, 1)} ` +
              `emulator_cores_publish=${f(publish.emulator / publish.wall, 2)} ` +
              `emulator_cores_consume=${f(consume.emulator / consume.wall, 2)}`);
  await pubsub.close();
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
