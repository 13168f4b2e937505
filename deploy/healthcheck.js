#!/usr/bin/env node
// Health check for containers and monitoring: healthy (exit 0) when the server
// at HOST PORT answers an XMPP stream header with <stream:features> within 5 s.
// Usage: node deploy/healthcheck.js [HOST] [PORT] [DOMAIN]
import net from 'node:net';

const [host = '127.0.0.1', port = '5222', domain = ''] = process.argv.slice(2);
const to = domain === '' ? '' : ` to='${domain}'`;
let seen = '';
const sock = net.connect({ host, port: Number(port) }, () => {
  sock.write(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'${to}>`);
});
const done = (code, why) => {
  if (code !== 0) process.stderr.write(`unhealthy: ${why}\n`);
  sock.destroy();
  process.exit(code);
};
sock.setTimeout(5000, () => done(1, 'no stream features within 5 s'));
sock.on('data', (d) => {
  seen += d.toString('utf8');
  if (seen.includes('<stream:error')) done(1, `stream error: ${seen.slice(seen.indexOf('<stream:error'), 300)}`);
  if (seen.includes('<stream:features')) {
    sock.write('</stream:stream>');
    done(0);
  }
});
sock.on('error', (err) => done(1, err.message));
sock.on('close', () => done(1, 'connection closed before stream features'));
