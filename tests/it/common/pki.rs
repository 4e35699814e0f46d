//! A throwaway certificate authority for client-certificate tests (rcgen): a CA, client
//! certificates it issues with a chosen subject CN, and PEM files for curl.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use super::raw::ClientCert;

pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A client certificate and its key, as the raw client and as PEM files take them.
pub struct ClientIdentity {
    pub cert: ClientCert,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// Writes the CA certificate to `dir/<file>` and returns the path (`tls.client_ca_file`).
    pub fn write(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, self.pem()).expect("write CA");
        path
    }

    /// A client certificate with subject CN `cn`, for client authentication.
    pub fn client(&self, cn: &str) -> ClientIdentity {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("client certificate");
        ClientIdentity {
            cert: ClientCert {
                chain: vec![cert.der().clone()],
                key_pkcs8: key.serialize_der(),
            },
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl ClientIdentity {
    /// Writes `<name>.crt` and `<name>.key` into `dir` (for curl's `--cert` / `--key`).
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("write cert");
        std::fs::write(&key, &self.key_pem).expect("write key");
        (cert, key)
    }
}
