// WebSocket -> TCP bridge for the MQTT-over-WebSocket tests. Debian's Mosquitto is built
// without websockets, so this accepts ws:// (and, given a certificate, wss://) connections
// offering the "mqtt" subprotocol and pipes the bytes of their binary frames to the broker's
// TCP port and back. Each chunk from the broker goes out as two frames (a fragment and its
// continuation) after a ping, so clients meet continuation and control frames too.
//   node ws_bridge.js WS_PORT TCP_PORT [WSS_PORT CERT_FILE KEY_FILE]
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');
const net = require('net');
const { WebSocketServer } = require('ws');

const [wsPort, tcpPort, wssPort, certFile, keyFile] = process.argv.slice(2);

function serve(server, port) {
  const wss = new WebSocketServer({
    server,
    handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : false),
  });
  wss.on('connection', (ws) => {
    const tcp = net.connect(Number(tcpPort), '127.0.0.1');
    ws.ping();
    tcp.on('data', (chunk) => {
      if (chunk.length < 2) {
        ws.send(chunk, { binary: true });
        return;
      }
      const half = chunk.length >> 1;
      ws.send(chunk.subarray(0, half), { binary: true, fin: false });
      ws.send(chunk.subarray(half), { binary: true, fin: true });
    });
    ws.on('message', (data) => tcp.write(data));
    tcp.on('close', () => ws.close());
    tcp.on('error', () => ws.terminate());
    ws.on('close', () => tcp.destroy());
    ws.on('error', () => tcp.destroy());
  });
  server.listen(Number(port), '127.0.0.1');
}

serve(http.createServer(), wsPort);
if (wssPort) {
  serve(https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) }),
        wssPort);
}
