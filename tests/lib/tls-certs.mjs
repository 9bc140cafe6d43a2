// Throwaway TLS certificates for the suites that run switchboard with
// --tls-cert/--tls-key (tests/integration/tls.test.mjs, tests/ai's browser
// test over HTTPS): made with the `openssl` command in a temporary directory,
// never kept. Node built-ins only.
//
//   const pki = makePki();             // a CA (ca.pem) in a new temp dir
//   const a = pki.issue('a');          // a.pem / a.key: DNS:localhost, IP:127.0.0.1, signed by the CA
//   pki.cleanup();
//
// Node clients trust the CA with `ca: pki.caPem` per connection, or, for a
// child process whose TLS we do not control (ably-js), NODE_EXTRA_CA_CERTS.
// Chromium trusts a leaf by its public key: --ignore-certificate-errors-spki-list
// with spkiHash(cert).

import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function makePki(prefix = 'sw-tls-') {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const openssl = (args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  openssl(['req', '-x509', ...EC, '-days', '2', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=switchboard test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const caFile = path.join(dir, 'ca.pem');
  return {
    dir,
    caFile,
    caPem: readFileSync(caFile),
    /** A server certificate signed by the CA: {cert, key} file paths, pem, serial (hex, upper case). */
    issue(name, san = 'DNS:localhost,IP:127.0.0.1') {
      openssl(['req', '-new', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
      writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
        '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`]);
      const cert = path.join(dir, `${name}.pem`);
      const pem = readFileSync(cert);
      return { cert, key: path.join(dir, `${name}.key`), pem, serial: new crypto.X509Certificate(pem).serialNumber };
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate: what Chromium's
 * --ignore-certificate-errors-spki-list takes. */
export function spkiHash(certPem) {
  const spki = new crypto.X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(spki).digest('base64');
}
