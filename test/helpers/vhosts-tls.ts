/**
 * Virtual-host tests: what certificate a TLS listener answers for an SNI name, seen as a client
 * sees it (direct TLS, STARTTLS on a c2s stream, HTTPS). No trust decision here: the test
 * checks the names the certificate covers (tls.checkServerIdentity), which is what a client
 * checks after the chain.
 */
import net from 'node:net';
import tls from 'node:tls';

export interface PeerCert {
  subjectCN: string;
  issuerCN: string;
  altNames: string;
  /** The certificate is valid for `name` by RFC 6125 host name rules. */
  covers(name: string): boolean;
}

function describe(cert: tls.PeerCertificate): PeerCert {
  return {
    subjectCN: String(cert.subject?.CN ?? ''),
    issuerCN: String(cert.issuer?.CN ?? ''),
    altNames: cert.subjectaltname ?? '',
    covers: (name) => tls.checkServerIdentity(name, cert) === undefined,
  };
}

/** Direct TLS (c2s-tls, https, s2s-tls): the certificate offered for `servername`. */
export function certForSni(port: number, servername: string, alpn = 'xmpp-client'): Promise<PeerCert> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, ALPNProtocols: [alpn] }, () => {
      const cert = s.getPeerCertificate();
      s.destroy();
      resolve(describe(cert));
    });
    s.once('error', reject);
    s.setTimeout(60000, () => {
      s.destroy();
      reject(new Error('TLS handshake timed out'));
    });
  });
}

/** STARTTLS on a c2s stream addressed to `domain` (header 'to'), SNI = `domain`. */
export function certForStartTls(port: number, domain: string): Promise<PeerCert> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const fail = (err: Error): void => {
      sock.destroy();
      reject(err);
    };
    sock.setTimeout(60000, () => fail(new Error('STARTTLS timed out')));
    sock.once('error', fail);
    sock.on('data', function onData(d: Buffer) {
      buf += d.toString('utf8');
      if (buf.includes('</stream:features>') && !buf.includes('<starttls-sent/>')) {
        buf += '<starttls-sent/>';
        sock.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
      } else if (buf.includes('<proceed')) {
        sock.removeListener('data', onData);
        const s = tls.connect({ socket: sock, servername: domain, rejectUnauthorized: false }, () => {
          const cert = s.getPeerCertificate();
          s.destroy();
          resolve(describe(cert));
        });
        s.once('error', fail);
      } else if (buf.includes('<stream:error')) {
        fail(new Error(`stream error: ${buf}`));
      }
    });
    sock.write(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${domain}' version='1.0'>`);
  });
}
