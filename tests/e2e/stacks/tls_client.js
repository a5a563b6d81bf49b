// Node's tls.connect as a client: CONNECT through the proxy with http.request, then TLS over
// that socket trusting only the CA file given (Node verifies the certificate after its
// handshake completes), one GET; prints the body. Exit 1 when TLS or the request fails.
//
// usage: node tls_client.js PROXY_PORT URL CAFILE
'use strict';
const fs = require('fs');
const http = require('http');
const tls = require('tls');

const [proxyPort, urlText, caFile] = process.argv.slice(2);
const url = new URL(urlText);
const authority = `${url.hostname}:${url.port || 443}`;
const fail = (why) => {
  console.error(why);
  process.exit(1);
};
setTimeout(() => fail('timed out'), 10000).unref();

const connect = http.request({
  host: '127.0.0.1',
  port: Number(proxyPort),
  method: 'CONNECT',
  path: authority,
  headers: {host: authority},
});
connect.on('error', (e) => fail(`proxy: ${e.message}`));
connect.on('connect', (res, socket) => {
  if (res.statusCode !== 200) fail(`CONNECT refused: ${res.statusCode}`);
  const secure = tls.connect({socket, servername: url.hostname, ca: [fs.readFileSync(caFile)]});
  secure.on('error', (e) => fail(`TLS: ${e.message}`));
  secure.on('secureConnect', () => {
    secure.write(`GET ${url.pathname} HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`);
  });
  const chunks = [];
  secure.on('data', (d) => chunks.push(d));
  secure.on('end', () => {
    const text = Buffer.concat(chunks).toString();
    const split = text.indexOf('\r\n\r\n');
    if (!/^HTTP\/1\.1 200 /.test(text)) fail(`status: ${text.split('\r\n')[0]}`);
    process.stdout.write(text.slice(split + 4));
  });
});
connect.end();
