// tls_proxy.mjs: a TLS-terminating proxy in front of switchboard, for the
// client tests (test_tls.c, cli.test.mjs).
//
//   node tls_proxy.mjs CERT_DIR UPSTREAM_PORT
//
// First, when CERT_DIR has no ca.pem, makes throwaway certificates there with
// the openssl command: a CA (ca.pem), two server certificates it signs,
// good.pem (DNS:localhost, IP:127.0.0.1) and other.pem (DNS:other.invalid),
// and an unrelated CA (ca2.pem). Then serves good and other, each on its own
// port on 127.0.0.1, prints {"good":P,"other":Q} on one line once both
// listen, and pipes every TLS connection, decrypted, to
// 127.0.0.1:UPSTREAM_PORT. The SNI each connection sent is appended to
// CERT_DIR/sni.log ("-" for none). Exits when its stdin closes.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';

const [dir, upstream] = process.argv.slice(2);

function makeCerts() {
  const openssl = (args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'];
  openssl(['req', '-x509', ...ec, '-days', '2', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=switchboard test CA', ...ca]);
  openssl(['req', '-x509', ...ec, '-days', '2', '-keyout', 'ca2.key', '-out', 'ca2.pem', '-subj', '/CN=another CA', ...ca]);
  for (const [name, san] of [['good', 'DNS:localhost,IP:127.0.0.1'], ['other', 'DNS:other.invalid']]) {
    openssl(['req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    fs.writeFileSync(path.join(dir, `${name}.ext`),
      `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
      '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`]);
  }
}

if (!fs.existsSync(path.join(dir, 'ca.pem'))) makeCerts();

function serve(name) {
  const server = tls.createServer(
    { key: fs.readFileSync(path.join(dir, `${name}.key`)), cert: fs.readFileSync(path.join(dir, `${name}.pem`)) },
    (sock) => {
      fs.appendFileSync(path.join(dir, 'sni.log'), `${sock.servername || '-'}\n`);
      const up = net.connect(Number(upstream), '127.0.0.1');
      // pipe() ends the other side on end: close_notify towards the client.
      sock.pipe(up);
      up.pipe(sock);
      const done = () => {
        sock.destroy();
        up.destroy();
      };
      sock.on('error', done);
      up.on('error', done);
      sock.on('close', () => up.end());
      up.on('close', () => sock.end());
    },
  );
  // Refused handshakes (the client rejecting our certificate) are expected.
  server.on('tlsClientError', () => {});
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

const good = await serve('good');
const other = await serve('other');
process.stdout.write(`${JSON.stringify({ good, other })}\n`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
